"""The command line shared by ``jobs/tune_<family>.py``: parse flags, connect/start Ray, run a study.

With no arguments: a small study on the embedded phantom cohort (generated and converted into
``<root>/data/`` if missing), Tune storage in ``<root>/runs/studies`` and MLflow in
``$MLFLOW_TRACKING_URI`` or ``sqlite:////<root>/runs/mlflow.db``. ``<root>`` is the repository
(or ``$RAYSYS_HOME``). Under ``ray job submit`` (``RAY_ADDRESS`` set) it connects to the cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from raysys.config import ConfigError, parse_overrides
from raysys.train import ScalingSpec, TrackingSpec, TrainConfig
from raysys.urls import absolute_url, local_path
from raysys.tune.spec import ASHA_REDUCTION_FACTOR, SCHEDULERS, SEARCHES, STUDY_EXPERIMENT, TPE_STARTUP_TRIALS

DEMO_SUBJECTS = 24  # 4 folds: 12 train, 6 val, 6 test subjects (batches need distinct subjects)


def project_root() -> Path:
    """``$RAYSYS_HOME``, else the source checkout holding this package, else the working dir."""
    if os.environ.get("RAYSYS_HOME"):
        return Path(os.environ["RAYSYS_HOME"]).resolve()
    checkout = Path(__file__).resolve().parents[2]
    return checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()


def build_parser(family: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"tune_{family}.py",
        description=f"Hyperparameter study of the {family} family: Ray Tune + Optuna (TPE or random search) + ASHA "
                    "(or no early stopping), tracked in MLflow.",
    )
    p.add_argument("--data", default=None, help="Zarr store; default: the embedded phantom, generated and converted if missing")
    p.add_argument("--trials", type=int, default=4, help="trials in the study (default 4)")
    p.add_argument("--max-epochs", type=int, default=None,
                   help=f"epochs of a trial that is never stopped early (train.epochs = ASHA max_t); default: the preset's budget, else {STUDY_EPOCHS}")
    p.add_argument("--grace-epochs", type=int, default=1, help="epochs every trial runs before ASHA may stop it")
    p.add_argument("--search", choices=SEARCHES, default="tpe",
                   help="sampler over the family's search space: tpe (Optuna TPESampler, default) or random "
                        "(Optuna RandomSampler: the random-search baseline); both evaluate the paper's/preset's values first")
    p.add_argument("--scheduler", choices=SCHEDULERS, default="asha",
                   help="early stopping: asha (default) or none (FIFO: every trial trains --max-epochs epochs)")
    p.add_argument("--reduction-factor", type=int, default=ASHA_REDUCTION_FACTOR,
                   help=f"ASHA's eta: rungs at grace x eta^k epochs, each keeping the best 1/eta (default {ASHA_REDUCTION_FACTOR})")
    p.add_argument("--tpe-startup-trials", type=int, default=TPE_STARTUP_TRIALS,
                   help=f"trials TPE draws at random before it models the results, first points included "
                        f"(default {TPE_STARTUP_TRIALS}, Optuna's)")
    p.add_argument("--workers-per-trial", type=int, default=1, help="Ray Train workers per trial (DDP)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per Train worker (0 = CPU, gloo)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs reserved per Train worker")
    p.add_argument("--concurrency", type=int, default=None,
                   help="trials running at once (default: cluster CPUs or GPUs / per-trial need, at least 1)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted study --name in --storage")
    p.add_argument("--name", default=None, help="study name (default: the first free <family>-study-<k>)")
    p.add_argument("--storage", default=None,
                   help="where studies live: a dir shared by all nodes or an fsspec URL, e.g. s3://bucket/studies "
                        "(default <root>/runs/studies)")
    p.add_argument("--optuna-storage", default=None, metavar="DB_URL",
                   help="the Optuna study's database (sqlite:////shared/optuna.db, postgresql://...; never MLflow's); "
                        "default: sqlite in the study dir, so required when --storage is a URL")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else sqlite:////<root>/runs/mlflow.db)")
    p.add_argument("--experiment", default=None, help=f"MLflow experiment (default {STUDY_EXPERIMENT})")
    p.add_argument("--fix", action="append", default=[], metavar="KEY=VALUE",
                   help="pin a search-space parameter (repeatable), e.g. --fix regulariser=sim --fix train.batch_size=4")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler and of every trial's training")
    p.add_argument("--preset", default="tiny", help="model preset: tiny | cpu | paper (cpu: sized for a 2-core machine, with its own budget)")
    p.add_argument("--batch-size", type=int, default=None, help=f"slices per worker per step (default: the preset's budget, else {TrainConfig.batch_size})")
    p.add_argument("--fold", type=int, default=0, help="cross-validation fold (validation = fold + 1)")
    p.add_argument("--max-steps-per-epoch", type=int, default=None,
                   help="cap on train batches per epoch and rank (0 = all; default: the preset's budget, else 0)")
    p.add_argument("--max-val-steps", type=int, default=None,
                   help="cap on validation batches per rank (0 = all; default: the preset's budget, else 0)")
    p.add_argument("--objectives", default=None, metavar="METRIC[:max|min],...",
                   help="multi-objective study: comma-separated metrics, the first 'objective' (the family's objective, "
                        "used by ASHA, the best trial and the champion), e.g. 'objective,val/disentanglement'; "
                        "default: the family's single objective")
    p.add_argument("--no-register", action="store_true", help="do not register the best checkpoint in the Model Registry")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray started when RAY_ADDRESS is unset")
    return p


def ensure_embedded_store(root: Path) -> str:
    """The phantom store under ``root/data``, generating and converting the cohort if missing."""
    from data_prep.convert import convert
    from data_prep.phantom import generate_cohort
    from raysys.data import open_store

    store = root / "data" / "phantom.zarr"
    try:
        open_store(str(store))
        return str(store)
    except Exception:  # noqa: BLE001 - missing or incomplete: (re)build it; convert resumes
        pass
    cohort = root / "data" / "phantom"
    if not (cohort / "manifest.csv").is_file():
        print(f"generating the embedded phantom cohort ({DEMO_SUBJECTS} subjects) in {cohort}", flush=True)
        generate_cohort(cohort, subjects=DEMO_SUBJECTS, seed=0, resolution=2)
    print(f"converting {cohort} -> {store}", flush=True)
    convert(str(cohort), str(store), size=(64, 64), normalise="zscore", folds=4, seed=0, progress=False)
    return str(store)


# Epochs of a study whose preset brings no budget: short trials, so a default study is small
# (ASHA's max_t; a single training run defaults to TrainConfig's epochs).
STUDY_EPOCHS = 2
# A flag left unset when the preset has no budget for it: TrainConfig's defaults (epochs: STUDY_EPOCHS).
FALLBACK_BUDGET = {"epochs": STUDY_EPOCHS, **{k: getattr(TrainConfig(), k) for k in ("batch_size", "max_steps_per_epoch", "max_val_steps")}}


def resolve_budget(family: str, args: argparse.Namespace) -> dict[str, int]:
    """epochs / batch_size / max_steps_per_epoch / max_val_steps: the flag when given, else the
    preset's budget (``raysys.models.preset_budget``), else ``FALLBACK_BUDGET``."""
    from raysys.models import preset_budget

    budget = {**FALLBACK_BUDGET, **preset_budget(family, args.preset)}
    flags = {"epochs": args.max_epochs, "batch_size": args.batch_size,
             "max_steps_per_epoch": args.max_steps_per_epoch, "max_val_steps": args.max_val_steps}
    return {k: int(flags[k] if flags[k] is not None else budget[k]) for k in FALLBACK_BUDGET}


def init_ray(args: argparse.Namespace, concurrency_hint: int) -> None:
    """Like the train jobs, but a local Ray's trial drivers take the custom resource
    ``trial_driver`` instead of a CPU (2-core boxes would deadlock)."""
    from raysys.train.cli import init_ray as init_train_ray

    init_train_ray(args.num_cpus, resources={"trial_driver": max(concurrency_hint, 1)})


def default_concurrency(args: argparse.Namespace) -> int:
    import ray

    resources = ray.cluster_resources()
    if args.gpus_per_worker > 0:
        per_trial, have = args.workers_per_trial * args.gpus_per_worker, resources.get("GPU", 0)
    else:
        per_trial, have = args.workers_per_trial * args.cpus_per_worker, resources.get("CPU", 1)
    return max(1, min(args.trials, int(have // per_trial)))


def default_name(family: str, storage: str) -> str:
    from raysys.tune.study_dir import StudyDir

    studies, k = StudyDir(storage), 1
    while studies.exists(f"{family}-study-{k}"):
        k += 1
    return f"{family}-study-{k}"


def main(family: str, argv: Sequence[str] | None = None) -> int:
    from raysys.tracking import resolve_tracking_uri
    from raysys.tune.run import run_study
    from raysys.tune.spec import StudyError, StudySpec, parse_objectives

    args = build_parser(family).parse_args(argv)
    root = project_root()
    try:
        fixed = parse_overrides(args.fix)
    except ConfigError as err:
        print(f"--fix: {err}", file=sys.stderr)
        return 2
    storage = absolute_url(args.storage, "--storage") if args.storage else str(root / "runs" / "studies")
    if args.resume and not args.name:
        print("--resume needs --name (the study to continue)", file=sys.stderr)
        return 2
    name = args.name or default_name(family, storage)
    try:
        budget = resolve_budget(family, args)
    except ValueError as err:
        print(f"--preset: {err}", file=sys.stderr)
        return 2
    try:  # reject a bad --objectives before generating data or starting Ray
        objectives = StudySpec(train=TrainConfig(family=family), name=name, storage=storage,
                               objectives=parse_objectives(args.objectives)).objective_specs
    except ValueError as err:
        print(f"--objectives: {err}", file=sys.stderr)
        return 2
    tracking_uri = resolve_tracking_uri(args.tracking_uri, default_dir=root / "runs")
    # That default is a file on this machine: fine for a local study, refused for one on object storage.
    tracking_given = bool(args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")) or local_path(storage) is not None
    data = args.data or ensure_embedded_store(root)
    from raysys.preflight import preflight_study

    try:  # every check that can fail before Ray starts: one line naming the flag, exit 2
        preflight_study(family, args, data=data, budget=budget, objectives=objectives, storage=storage, name=name,
                        tracking_uri=tracking_uri if tracking_given else None)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    init_ray(args, concurrency_hint=args.concurrency or args.trials)
    try:
        spec = StudySpec(
            train=TrainConfig(family=family, preset=args.preset, data=data, fold=args.fold, seed=args.seed, **budget),
            name=name, storage=storage, optuna_storage=args.optuna_storage,
            scaling=ScalingSpec(workers=args.workers_per_trial, gpus_per_worker=args.gpus_per_worker,
                                cpus_per_worker=args.cpus_per_worker),
            tracking=TrackingSpec(tracking_uri=tracking_uri, experiment=args.experiment or STUDY_EXPERIMENT),
            trials=args.trials, grace_epochs=min(args.grace_epochs, budget["epochs"]),
            concurrency=args.concurrency or default_concurrency(args), fixed=fixed,
            register=not args.no_register, objectives=parse_objectives(args.objectives),
            search=args.search, scheduler=args.scheduler, reduction_factor=args.reduction_factor,
            tpe_startup_trials=args.tpe_startup_trials,
        )
        outcome = run_study(spec, resume=args.resume)
    except (StudyError, ValueError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: run_study ended the MLflow runs KILLED
        print(f"interrupted; continue with --name {name} --resume", file=sys.stderr)
        return 130
    print(report(outcome, data=data), flush=True)
    return 0 if outcome.best_trial is not None else 1


def report(outcome: Any, data: str | None = None) -> str:
    """Human summary plus one machine-readable ``RAYSYS_STUDY {json}`` line."""
    lines = [
        f"study dir       : {outcome.study_dir}",
        f"MLflow          : {outcome.tracking_uri}  (parent run {outcome.parent_run_id})",
        f"trials          : {outcome.trials} ({len(outcome.errored)} errored)",
    ]
    for trial, reason in outcome.errored.items():
        lines.append(f"  error {trial}: {reason}")
    if outcome.best_trial is not None:
        params = {k: v for k, v in (outcome.best_config or {}).items()}
        lines.append(f"best trial      : {outcome.best_trial}  objective={outcome.best_objective:.4f}")
        lines.append(f"best config     : {json.dumps(params, default=str)}")
    if outcome.pareto_front is not None:
        lines.append(f"objectives      : {', '.join(f'{n} ({m})' for n, m in outcome.objectives)}")
        for t in outcome.pareto_front:
            values = ", ".join(f"{k}={v:.4f}" for k, v in t["values"].items())
            lines.append(f"  pareto {t.get('tune_trial_id') or '#' + str(t['number'])}: {values}")
    if outcome.champion is not None:
        c = outcome.champion
        lines.append(f"registered      : models:/{c.name}/{c.version}  champion={c.is_champion} ({c.reason})")
    summary = {
        "study_dir": str(outcome.study_dir), "data": data, "parent_run_id": outcome.parent_run_id, "trials": outcome.trials,
        "errored": len(outcome.errored), "best_trial": outcome.best_trial, "best_objective": outcome.best_objective,
        "model": outcome.champion.name if outcome.champion else None,
        "version": outcome.champion.version if outcome.champion else None,
        "champion": outcome.champion.is_champion if outcome.champion else None,
    }
    if outcome.pareto_front is not None:
        summary["objectives"] = [name for name, _ in outcome.objectives]
        summary["pareto_trials"] = [t.get("tune_trial_id") or f"optuna#{t['number']}" for t in outcome.pareto_front]
    lines.append("RAYSYS_STUDY " + json.dumps(summary))
    return "\n".join(lines)

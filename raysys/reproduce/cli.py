"""The command line of ``jobs/reproduce.py``: parse, check everything before Ray starts, run the
grid under one MLflow parent run, write and log the report."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from raysys.config import ConfigError
from raysys.machine import machine_name
from raysys.reproduce.experiments import BUDGETS, EXPERIMENTS

EXPERIMENT_NAME = "raysys-reproduce"  # the MLflow experiment of the parent and child runs
TAG_EXPERIMENT = "raysys.reproduce"  # the parent's and children's tag: which paper experiment


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reproduce.py",
        description="Run one of the papers' experiments as a Ray Tune grid (rows x seeds, same budget each), score "
                    "every run on the test fold and write DIR/report.md with the tables and the claim checks.")
    p.add_argument("experiment", choices=sorted(EXPERIMENTS))
    p.add_argument("--budget", required=True, choices=BUDGETS,
                   help="smoke (CI, seconds per run), cpu (<= 60 min on 2 cores), gpu (the papers' presets and epochs)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per row (default: the budget's: smoke 1, cpu 2, gpu 3)")
    p.add_argument("--data", required=True, help="store URL (a path or s3://...), readable from every node")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default MLFLOW_TRACKING_URI, else ./mlflow.db)")
    p.add_argument("--out", required=True, help="directory for report.md, figures/, scores.csv, claims.csv")
    p.add_argument("--fold", type=int, default=0, help="cross-validation fold: test = this fold")
    p.add_argument("--storage", default=None, help="where the trials keep checkpoints (default OUT/tune; s3://... on a cluster)")
    p.add_argument("--workers-per-trial", type=int, default=1, help="Ray Train workers per run (1 = in the trial's process)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0)
    p.add_argument("--cpus-per-worker", type=float, default=1.0)
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray (default: all)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        setup = prepare(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from raysys.tune.cli import init_ray

    init_ray(argparse.Namespace(num_cpus=args.num_cpus), concurrency_hint=len(setup["plan"].runs) * len(setup["seeds"]))
    outcome = run(args, **setup)
    print(json.dumps(outcome, indent=2, default=str))
    return 0


def prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Every check that can fail before Ray starts (``ConfigError``, one line naming the flag)."""
    from raysys.preflight import checked_store
    from raysys.reproduce.experiments import get_experiment
    from raysys.reproduce.plan import check_sizes, make_plan, seeds_for
    from raysys.train import ScalingSpec
    from raysys.urls import absolute_url

    store = checked_store(args.data)
    if not 0 <= args.fold < int(store.attrs["folds"]):
        raise ConfigError(f"--fold {args.fold}: the store has {store.attrs['folds']} folds")
    plan = make_plan(get_experiment(args.experiment), args.budget, store, args.fold)
    if not plan.runs:
        raise ConfigError(f"{args.experiment}: no row can run in this build ({plan.skipped})")
    check_sizes(plan, store, args.fold)
    seeds = seeds_for(args.seeds, plan.budget)
    if args.workers_per_trial < 1:
        raise ConfigError(f"--workers-per-trial {args.workers_per_trial}: must be >= 1")
    scaling = ScalingSpec(workers=args.workers_per_trial, gpus_per_worker=args.gpus_per_worker,
                          cpus_per_worker=args.cpus_per_worker)
    out = Path(args.out).resolve()
    storage = absolute_url(args.storage or str(out / "tune"), "--storage")
    return {"store": store, "plan": plan, "seeds": seeds, "scaling": scaling, "out": out, "storage": storage}


def run(args: argparse.Namespace, *, store: Any, plan: Any, seeds: list[int], scaling: Any, out: Path,
        storage: str) -> dict[str, Any]:
    """Parent run, grid, scores, report; the parent ends FINISHED when any run was scored."""
    from raysys.config import to_flat
    from raysys.names import TAG_ROLE, TAG_STORE, TRAIN_KEY
    from raysys.reproduce.grid import run_grid
    from raysys.reproduce.report import write_report
    from raysys.reproduce.scores import collect
    from raysys.tracking import resolve_tracking_uri
    from raysys.train import TrackingSpec, TrainConfig
    from raysys.tune import study_tracking
    from raysys.tune.study_dir import StudyDir
    from raysys.tune.trainable import TrialContext

    started = time.monotonic()
    tracking_uri = resolve_tracking_uri(args.tracking_uri)
    budget = plan.budget
    base = TrainConfig(family=plan.runs[0].family, preset=budget.preset, data=store.url, fold=args.fold, **budget.train)
    name = f"{plan.experiment.name}-{plan.budget_name}"
    tags = {TAG_ROLE: "reproduce", TAG_EXPERIMENT: plan.experiment.name, TAG_STORE: store.store_id}
    params = {**to_flat(base, prefix=TRAIN_KEY), **to_flat(scaling, prefix="scaling."), "data.store_id": store.store_id,
              "reproduce.experiment": plan.experiment.name, "reproduce.budget": plan.budget_name,
              "reproduce.seeds": ",".join(map(str, seeds)), "reproduce.inputs": plan.inputs,
              "reproduce.rows": ",".join(r.label for r in plan.rows),
              "reproduce.runs": ",".join(r.key for r in plan.runs), "reproduce.eval_slices": budget.eval_slices}
    params.pop(f"{TRAIN_KEY}family")  # the children's own (rows of several families)
    parent = study_tracking.start_parent_run(tracking_uri, EXPERIMENT_NAME, name, params, tags, space_text="")
    tune_name = f"{name}-{parent[:8]}"  # unique per invocation: the parent run's id
    context = TrialContext(
        train=base, scaling=scaling,
        tracking=TrackingSpec(tracking_uri=tracking_uri, experiment=EXPERIMENT_NAME, parent_run_id=parent,
                              tags={TAG_EXPERIMENT: plan.experiment.name}),
        train_storage=StudyDir(storage).join(tune_name, "train"),
    )
    try:
        records = run_grid(plan, seeds, context, tune_name, storage)
        errored = {r.trial_id: r.error for r in records if r.error}
        study_tracking.close_trial_runs(tracking_uri, EXPERIMENT_NAME, parent, errored, base.epochs)
        scores, missing = collect(plan, records, tracking_uri)
        report, results, files = write_report(
            plan, scores, missing, seeds, out=out, store=store, fold=args.fold, machine=machine_name(),
            wall_seconds=time.monotonic() - started, parent_run_id=parent, tracking_uri=tracking_uri)
        log_report(tracking_uri, parent, report, files, results)
    except BaseException as err:
        status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
        study_tracking.kill_trial_runs(tracking_uri, EXPERIMENT_NAME, parent, f"{type(err).__name__}: {err}")
        study_tracking.end_parent_run(tracking_uri, parent, status, f"{type(err).__name__}: {err}")
        raise
    scored = len(records) - len(missing)
    study_tracking.end_parent_run(tracking_uri, parent, *(() if scored else ("FAILED", f"no run was scored: {missing}")))
    return {"report": str(report), "parent_run_id": parent, "tracking_uri": tracking_uri, "runs": len(records),
            "scored": scored, "skipped_rows": plan.skipped,
            "claims": {r.claim.text: r.check.verdict for r in results}}


def log_report(tracking_uri: str, run_id: str, report: Path, files: list[Path], results: list[Any]) -> None:
    """report.md, the csv files and figures/ on the parent run; claim verdicts as tags and counts as metrics."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    client.log_artifact(run_id, str(report))
    for path in files:
        client.log_artifact(run_id, str(path), "figures" if path.suffix == ".png" else None)
    for i, r in enumerate(results, 1):
        client.set_tag(run_id, f"raysys.claim.{i}", f"{r.check.verdict}: {r.claim.text}"[:5000])
    for verdict in ("held", "not held", "not testable"):
        client.log_metric(run_id, f"claims/{verdict.replace(' ', '_')}", sum(r.check.verdict == verdict for r in results))


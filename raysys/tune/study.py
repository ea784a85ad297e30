"""A hyperparameter study: Tune over the trial driver, Optuna TPE, ASHA, MLflow parent run.

Layout of a study ``<storage>/<name>/`` (absolute; any node of the cluster must reach it):
    tuner.pkl, experiment_state-*.json, <trial dirs>   Tune's own experiment (``Tuner.restore``)
    optuna.db                                        the Optuna study (its own sqlite: MLflow and
                                                     Optuna must not share a database)
    study.json                                       the MLflow parent run id (so ``--resume``
                                                     keeps logging under the same parent)
    train/<trial id>/                                each trial's Ray Train run (checkpoints)
    pareto_front.json                                multi-objective studies only: the Pareto
                                                     trials (Optuna ``study.best_trials``)

Multi-objective (``StudySpec.objectives``, e.g. ``("objective", "val/disentanglement")``): the
Optuna study gets one direction per objective (TPE handles several), but ASHA, Tune's best
result and the champion rule use the primary (first) objective, which is always ``objective``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping

import optuna
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from raysys.tune.space import FixedSpace, load_space
from raysys.tune.trainable import TrialContext, run_trial

log = logging.getLogger(__name__)

OBJECTIVE = "objective"  # the metric name raysys.train.fit reports for the family's objective
STUDY_FILE = "study.json"
OPTUNA_FILE = "optuna.db"
PARETO_FILE = "pareto_front.json"
TUNE_TRIAL_ATTR = "raysys.tune_trial_id"  # user attr of each Optuna trial: its Tune trial id


class StudyError(RuntimeError):
    """A study cannot start or resume; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class StudySpec:
    """Everything that defines a study (the CLI flags of jobs/tune_*.py)."""

    family: str
    data: str | None
    name: str
    storage: str
    trials: int = 4
    max_epochs: int = 2
    grace_epochs: int = 1
    workers_per_trial: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    concurrency: int = 1
    seed: int = 0
    preset: str = "tiny"
    batch_size: int = 8
    max_steps_per_epoch: int = 0
    max_val_steps: int = 0
    fold: int = 0
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    tracking_uri: str | None = None
    experiment: str = "raysys-studies"
    register: bool = True
    mode: str | None = None  # "max"/"min"; None = the family's objective_mode
    # Multi-objective: "NAME[:max|min]" entries, the first "objective" (the family's objective,
    # also accepted as val/<family objective>); () = single-objective. See ``objective_specs``.
    objectives: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ValueError(f"trials must be >= 1, got {self.trials}")
        if self.max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {self.max_epochs}")
        if not 1 <= self.grace_epochs <= self.max_epochs:
            raise ValueError(f"grace_epochs must be in 1..max_epochs={self.max_epochs}, got {self.grace_epochs}")
        if self.workers_per_trial < 1:
            raise ValueError(f"workers_per_trial must be >= 1, got {self.workers_per_trial}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if not self.name or "/" in self.name:
            raise ValueError(f"name must be a non-empty name without '/', got {self.name!r}")
        if self.mode not in (None, "max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {self.mode!r}")
        if isinstance(self.objectives, str):
            object.__setattr__(self, "objectives", parse_objectives(self.objectives))
        object.__setattr__(self, "objectives", tuple(self.objectives))
        if self.objectives:
            self.objective_specs  # noqa: B018 - validates the entries (raises ValueError)

    @property
    def study_dir(self) -> Path:
        return Path(self.storage).expanduser().resolve() / self.name

    @property
    def objective_mode(self) -> str:
        if self.mode is not None:
            return self.mode
        from raysys.models import get_family

        return get_family(self.family).objective_mode

    @property
    def objective_specs(self) -> list[tuple[str, str]]:
        """[(reported metric, "max"|"min")]: the primary ``objective`` first, then the others.

        An entry without ``:max``/``:min`` takes the primary objective's mode. Other entries must
        be ``val/<metric>`` for one of the family's (aggregate) ``metric_names``, or any metric
        the trials report when the family is unknown.
        """
        if not self.objectives:
            return [(OBJECTIVE, self.objective_mode)]
        family_metrics, family_objective = _family_metrics(self.family)
        specs: list[tuple[str, str]] = []
        for entry in self.objectives:
            name, _, mode = entry.strip().partition(":")
            name, mode = name.strip(), (mode.strip() or self.objective_mode)
            if mode not in ("max", "min"):
                raise ValueError(f"objectives: mode of {entry!r} must be 'max' or 'min'")
            if family_objective is not None and name == f"val/{family_objective}":
                name = OBJECTIVE
            if not name:
                raise ValueError(f"objectives: empty metric name in {list(self.objectives)!r}")
            if family_metrics is not None and name != OBJECTIVE and name.removeprefix("val/") not in family_metrics:
                known = ", ".join(["objective"] + [f"val/{m}" for m in family_metrics])
                raise ValueError(f"objectives: {name!r} is not a metric of the {self.family} family ({known})")
            specs.append((name, mode))
        names = [name for name, _ in specs]
        if names[0] != OBJECTIVE:
            raise ValueError(
                f"objectives: the first (primary) objective must be 'objective' (the family's objective; ASHA, the "
                f"best trial and the champion use it), got {names[0]!r}"
            )
        if specs[0][1] != self.objective_mode:
            raise ValueError(f"objectives: the primary objective's mode must be the study's mode {self.objective_mode!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"objectives: duplicate metric in {names!r}")
        return specs

    @property
    def multi_objective(self) -> bool:
        return len(self.objective_specs) > 1

    @property
    def objective_name(self) -> str:
        """The family's metric behind ``objective`` (recorded on registered versions)."""
        try:
            from raysys.models import get_family

            return f"val/{get_family(self.family).objective}"
        except Exception:  # a test family without a model: the generic name
            return OBJECTIVE


def parse_objectives(text: str | None) -> tuple[str, ...]:
    """``--objectives "objective,val/disentanglement:max"`` -> ("objective", "val/disentanglement:max")."""
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def _family_metrics(family: str) -> tuple[tuple[str, ...] | None, str | None]:
    """(class-level metric names, objective metric) of ``family``, (None, None) if it has no model."""
    try:
        from raysys.models import get_family

        cls = get_family(family)
        return tuple(cls.metric_names), cls.objective
    except Exception:  # noqa: BLE001 - a test family without a model: accept any metric
        return None, None


class TaggedOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that records each Optuna trial's Tune trial id (user attr
    ``raysys.tune_trial_id``), so the Pareto front names the trials as MLflow and Tune do."""

    def suggest(self, trial_id: str):
        params = super().suggest(trial_id)
        ot_trial = self._ot_trials.get(trial_id)
        if params is not None and ot_trial is not None and TUNE_TRIAL_ATTR not in ot_trial.user_attrs:
            ot_trial.set_user_attr(TUNE_TRIAL_ATTR, trial_id)
        return params


@dataclasses.dataclass
class StudyOutcome:
    """What a finished study produced (the job prints it)."""

    study_dir: Path
    parent_run_id: str
    tracking_uri: str
    trials: int
    errored: dict[str, str]  # trial id -> first line of its error
    best_trial: str | None = None
    best_objective: float | None = None
    best_config: dict[str, Any] | None = None
    best_checkpoint: str | None = None
    champion: Any = None  # raysys.tune.champion.Publication
    objectives: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # [(metric, mode)], primary first
    pareto_front: list[dict[str, Any]] | None = None  # multi-objective only: ``pareto_front()``


def default_tracking_uri(spec: StudySpec) -> str:
    """``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else a sqlite file beside the studies."""
    if spec.tracking_uri:
        return spec.tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path(spec.storage).expanduser().resolve() / 'mlflow.db'}"


def store_id(data: str | None) -> str:
    if data is None:
        return "none"
    from raysys.data import open_store

    return open_store(data).store_id


def trial_resources(spec: StudySpec) -> dict[str, float]:
    """Resources of the trial driver itself (the Train workers get their own).

    A driver on a CPU would deadlock a 2-core box (driver + worker > 2), so where the cluster
    offers the custom resource ``trial_driver`` (our local Ray and the demo head do) the driver
    takes one of those; elsewhere it takes a sliver of a CPU.
    """
    if ray.cluster_resources().get("trial_driver", 0) >= 1:
        return {"trial_driver": 1}
    return {"CPU": 0.01}


def optuna_storage(study_dir: Path) -> optuna.storages.RDBStorage:
    return optuna.storages.RDBStorage(f"sqlite:///{study_dir / OPTUNA_FILE}")


def _space_description(family: str) -> str:
    import importlib

    return importlib.import_module(f"search_spaces.{family}").__doc__ or ""


def run_study(spec: StudySpec, *, resume: bool = False, trainable: Callable | None = None) -> StudyOutcome:
    """Run (or ``resume``) the study ``spec``; returns its outcome after registering the champion.

    ``trainable`` replaces the trial driver (tests use small function trainables); it is called
    as ``trainable(config, context)``.
    """
    from raysys.tune import study_tracking

    study_dir = spec.study_dir
    has_state = (study_dir / "tuner.pkl").exists()
    if resume and not has_state:
        raise StudyError(f"--resume: no study to resume at {study_dir} (no tuner.pkl); run without --resume")
    if not resume and (has_state or (study_dir / OPTUNA_FILE).exists()):
        raise StudyError(f"a study named {spec.name!r} already exists at {study_dir}; pass --resume or another --name")
    study_dir.mkdir(parents=True, exist_ok=True)
    # Snapshot Tune's experiment state (and the searcher) at least every second rather than every
    # 10 s, so a killed driver loses as little as possible; --resume restores that snapshot.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    tracking_uri = default_tracking_uri(spec)
    data_id = store_id(spec.data)
    mode = spec.objective_mode

    if resume:
        parent_run_id = json.loads((study_dir / STUDY_FILE).read_text())["parent_run_id"]
        study_tracking.reopen_parent_run(tracking_uri, parent_run_id)
    else:
        parent_run_id = study_tracking.start_parent_run(
            tracking_uri,
            spec.experiment,
            spec.name,
            params=study_params(spec, data_id, mode),
            tags={"raysys.study": spec.name, "raysys.family": spec.family, "raysys.store_id": data_id},
            space_text=_space_description(spec.family) if trainable is None else "",
        )
        (study_dir / STUDY_FILE).write_text(json.dumps({"parent_run_id": parent_run_id, "tracking_uri": tracking_uri}))

    context = TrialContext(
        family=spec.family,
        preset=spec.preset,
        data=spec.data or "",
        train_storage=str(study_dir / "train"),
        train={
            "epochs": spec.max_epochs,
            "batch_size": spec.batch_size,
            "max_steps_per_epoch": spec.max_steps_per_epoch,
            "max_val_steps": spec.max_val_steps,
            "seed": spec.seed,
            "fold": spec.fold,
        },
        workers=spec.workers_per_trial,
        gpus_per_worker=spec.gpus_per_worker,
        cpus_per_worker=spec.cpus_per_worker,
        tracking_uri=tracking_uri,
        experiment=spec.experiment,
        parent_run_id=parent_run_id,
        study=spec.name,
    )
    wrapped = tune.with_resources(tune.with_parameters(trainable or run_trial, context=context), trial_resources(spec))

    if resume:
        tuner = tune.Tuner.restore(str(study_dir), trainable=wrapped, resume_unfinished=True, restart_errored=False)
    else:
        tuner = build_tuner(spec, wrapped, mode)
    results = tuner.fit()
    mark_orphaned_optuna_trials(study_dir, spec.name)

    outcome = summarise(spec, results, mode, study_dir, parent_run_id, tracking_uri)
    outcome.objectives = spec.objective_specs
    if spec.multi_objective:
        outcome.pareto_front = pareto_front(study_dir, spec.name, [name for name, _ in outcome.objectives])
        (study_dir / PARETO_FILE).write_text(json.dumps(outcome.pareto_front, indent=2, default=str))
        study_tracking.log_pareto_front(tracking_uri, parent_run_id, outcome.pareto_front, study_dir / PARETO_FILE)
    study_tracking.log_outcome(tracking_uri, parent_run_id, outcome)
    # No run is left RUNNING: ASHA-stopped trials never reach their loop's own end.
    study_tracking.close_trial_runs(tracking_uri, spec.experiment, parent_run_id, outcome.errored, spec.max_epochs)
    if spec.register and outcome.best_checkpoint:
        from raysys.tune.champion import publish

        outcome.champion = publish(
            tracking_uri=tracking_uri,
            family=spec.family,
            checkpoint_dir=outcome.best_checkpoint,
            objective_name=spec.objective_name,
            objective_value=float(outcome.best_objective),
            mode=mode,
            store_id=data_id,
            run_id=study_tracking.find_trial_run(tracking_uri, spec.experiment, parent_run_id, outcome.best_trial)
            or parent_run_id,
            tags={"raysys.study": spec.name, "raysys.trial_id": str(outcome.best_trial),
                  **({"raysys.study_objectives": objectives_text(spec)} if spec.multi_objective else {})},
        )
        study_tracking.log_champion(tracking_uri, parent_run_id, outcome.champion)
    study_tracking.end_parent_run(tracking_uri, parent_run_id)
    return outcome


def study_params(spec: StudySpec, data_id: str, mode: str) -> dict[str, Any]:
    """The parent run's params: the study's design, so studies compare in the MLflow UI."""
    params = {f"study.{k}": v for k, v in dataclasses.asdict(spec).items() if k not in ("fixed", "tracking_uri")}
    params.update({f"study.fixed.{k}": v for k, v in spec.fixed.items()})
    params["study.store_id"] = data_id
    params["study.objective"] = spec.objective_name
    params["study.mode"] = mode
    params["study.objectives"] = objectives_text(spec)
    params["study.sampler"] = f"optuna.TPESampler(seed={spec.seed}), paper points first"
    params["study.scheduler"] = (
        f"ASHA(time_attr=training_iteration, grace_period={spec.grace_epochs}, max_t={spec.max_epochs}, reduction_factor=2)"
    )
    return params


def build_tuner(spec: StudySpec, trainable: Any, mode: str) -> tune.Tuner:
    space, paper_points = load_space(spec.family, max_levels=_max_levels(spec), epochs=spec.max_epochs, preset=spec.preset)
    fixed_space = FixedSpace(space, spec.fixed)
    objectives = spec.objective_specs
    # Multi-objective: metric/mode LISTS make OptunaSearch create a study with one direction per
    # objective (TPE is multi-objective); ASHA and TuneConfig below keep the primary objective.
    searcher = TaggedOptunaSearch(
        space=fixed_space,
        metric=[name for name, _ in objectives] if len(objectives) > 1 else OBJECTIVE,
        mode=[m for _, m in objectives] if len(objectives) > 1 else mode,
        points_to_evaluate=fixed_space.points(paper_points)[: spec.trials] or None,
        sampler=optuna.samplers.TPESampler(seed=spec.seed),
        study_name=spec.name,
        storage=optuna_storage(spec.study_dir),
    )
    scheduler = ASHAScheduler(
        time_attr="training_iteration", max_t=spec.max_epochs, grace_period=spec.grace_epochs, reduction_factor=2
    )
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric=OBJECTIVE,
            mode=mode,
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=spec.concurrency),
            scheduler=scheduler,
            num_samples=spec.trials,
        ),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=str(spec.study_dir.parent),
            # A failing trial (e.g. a nan loss) ends as ERROR with its reason; the study goes on.
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            verbose=1,
        ),
    )


def objectives_text(spec: StudySpec) -> str:
    """``objective(max)`` or e.g. ``objective(max),val/disentanglement(max)`` (objective = the family's)."""
    return ",".join(f"{name}({mode})" for name, mode in spec.objective_specs)


def pareto_front(study_dir: Path, name: str, objective_names: list[str]) -> list[dict[str, Any]]:
    """The Optuna study's Pareto-optimal trials (``study.best_trials``), each as
    ``{"number", "tune_trial_id", "values": {metric: value}, "params"}``, ordered by number."""
    study = optuna.load_study(study_name=name, storage=optuna_storage(study_dir))
    front = []
    for trial in sorted(study.best_trials, key=lambda t: t.number):
        front.append({
            "number": trial.number,
            "tune_trial_id": trial.user_attrs.get(TUNE_TRIAL_ATTR),
            "values": dict(zip(objective_names, trial.values)),
            "params": dict(trial.params),
        })
    return front


def _max_levels(spec: StudySpec) -> int | None:
    """L_max of the family's preset, for spaces that sweep a hierarchy depth (None otherwise)."""
    try:
        from raysys.models import make_config

        return getattr(make_config(spec.family, spec.preset), "max_levels", None)
    except Exception:  # noqa: BLE001 - a space without a model family behind it
        return None


def mark_orphaned_optuna_trials(study_dir: Path, name: str) -> int:
    """Optuna trials still RUNNING after Tune finished were asked by a driver that was killed
    before Tune recorded the trial; mark them FAIL (tagged) so the study's history stays true."""
    storage = optuna_storage(study_dir)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return 0
    orphans = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.RUNNING]
    for trial in orphans:
        storage.set_trial_user_attr(trial._trial_id, "raysys.orphaned", "driver stopped before Tune started it")
        storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    return len(orphans)


def _checkpoint_exists(path: Any) -> bool:
    if not isinstance(path, str) or not path:
        return False
    return "://" in path or os.path.isdir(path)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def summarise(spec: StudySpec, results: tune.ResultGrid, mode: str, study_dir: Path, parent_run_id: str, tracking_uri: str) -> StudyOutcome:
    errored: dict[str, str] = {}
    best: tuple[float, str, dict, str | None] | None = None
    sign = 1.0 if mode == "max" else -1.0
    for result in results:
        if result.error is not None:
            errored[_trial_name(result)] = error_reason(result.error)
        frame = result.metrics_dataframe
        if frame is None or OBJECTIVE not in frame:
            continue
        rows = frame[frame[OBJECTIVE].map(_finite)]
        if "checkpoint_path" in rows:  # only the kept (best) checkpoints are still on disk
            kept = rows[rows["checkpoint_path"].map(_checkpoint_exists)]
            rows = kept if not kept.empty else rows
        if rows.empty:
            continue
        row = rows.loc[(rows[OBJECTIVE] * sign).idxmax()]
        value = float(row[OBJECTIVE])
        checkpoint = row.get("checkpoint_path") if "checkpoint_path" in rows else None
        checkpoint = checkpoint if isinstance(checkpoint, str) and checkpoint else None
        if best is None or sign * value > sign * best[0]:
            best = (value, _trial_name(result), dict(result.config or {}), checkpoint)
    outcome = StudyOutcome(study_dir, parent_run_id, tracking_uri, trials=len(results), errored=errored)
    if best is not None:
        outcome.best_objective, outcome.best_trial, outcome.best_config, outcome.best_checkpoint = best
    return outcome


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Fault)\b.*:")
_WRAPPERS = ("ray.", "TrainingFailedError", "ControllerError", "RayTaskError", "WorkerGroupError", "TuneError")


def error_reason(error: BaseException) -> str:
    """The innermost meaningful exception line of a trial's error (Ray wraps the real one)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    found = [line for line in lines if _EXCEPTION_LINE.match(line)]
    specific = [line for line in found if not line.startswith(_WRAPPERS)]
    return (specific or found or lines or [type(error).__name__])[-1][:500]


def _trial_name(result: tune.Result) -> str:
    """The Tune trial id of a result (what trials' Train and MLflow runs are named by).

    Trial directories are named ``<trainable>_<experiment tag>_<index>_<params...>``; the trial
    id is ``<experiment tag>_<index>``, which also names results that never reported metrics.
    """
    if (result.metrics or {}).get("trial_id"):
        return str(result.metrics["trial_id"])
    parts = Path(result.path).name.split("_")
    for i in range(len(parts) - 1):
        if len(parts[i + 1]) == 5 and parts[i + 1].isdigit():
            return f"{parts[i]}_{parts[i + 1]}"
    return Path(result.path).name

"""What defines a study: the training every trial shares plus the study's own choices.

``StudySpec`` composes the training run's own configs (``TrainConfig``, ``ScalingSpec``,
``TrackingSpec``: their defaults and validation are the only ones) and adds the fields only a
study has. ``train.epochs`` is ASHA's ``max_t`` (a trial never stopped early trains that long),
``scaling.workers`` the Ray Train workers of each trial, ``train.seed`` seeds the sampler and
every trial's training. ``search`` picks the Optuna sampler over the one define-by-run space
(TPE, or random search as a baseline) and ``scheduler`` the early stopping (ASHA, or none: every
trial trains ``train.epochs`` epochs).

Experiment names, one rule: a study records into ``STUDY_EXPERIMENT`` ("raysys-studies") and a
single training run into ``TrackingSpec``'s default ("raysys"), whatever the entry point.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from raysys.config import ConfigError
from raysys.names import OBJECTIVE, VAL_PREFIX
from raysys.urls import local_path
from raysys.train import ScalingSpec, TrackingSpec, TrainConfig
from raysys.tune.study_dir import StudyDir

STUDY_EXPERIMENT = "raysys-studies"
OPTUNA_FILE = "optuna.db"  # the default Optuna database: a sqlite file in a local study dir
# --search: the Optuna sampler OptunaSearch drives over the family's define-by-run space.
SEARCHES = ("tpe", "random")
# --scheduler: "asha" stops poor trials at its rungs; "none" is Tune's FIFO (every trial runs train.epochs).
SCHEDULERS = ("asha", "none")
ASHA_REDUCTION_FACTOR = 2  # --reduction-factor default: each ASHA rung keeps 1/2 of the trials
TPE_STARTUP_TRIALS = 10  # --tpe-startup-trials default: Optuna's n_startup_trials, spelled out
# StudySpec fields fixed for a study's life: written to study.json, a changed one refused by --resume.
STUDY_CHOICES = ("search", "scheduler", "reduction_factor", "tpe_startup_trials")


class StudyError(RuntimeError):
    """A study cannot start or resume; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class StudySpec:
    """Everything that defines a study (the CLI flags of jobs/tune_*.py).

    ``train`` holds what every trial shares (``family``, ``preset``, ``data``, ``epochs`` = ASHA's
    ``max_t``, ``batch_size``, ``seed``, ...); a sampled ``train.*`` parameter overrides it per trial.
    ``tracking.parent_run_id`` is ignored: the study creates (or, resumed, reopens) its parent run.
    """

    train: TrainConfig
    name: str
    storage: str  # a local/shared directory or an fsspec URL (s3://...) holding <name>/ (Tune's state)
    scaling: ScalingSpec = dataclasses.field(default_factory=ScalingSpec)
    tracking: TrackingSpec = dataclasses.field(default_factory=lambda: TrackingSpec(experiment=STUDY_EXPERIMENT))
    trials: int = 4
    grace_epochs: int = 1
    concurrency: int = 1
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # --fix: pinned search-space params
    register: bool = True
    mode: str | None = None  # "max"/"min"; None = the family's objective_mode
    # Multi-objective: "NAME[:max|min]" entries, the first "objective" (the family's objective,
    # also accepted as val/<family objective>); () = single-objective. See ``objective_specs``.
    objectives: tuple[str, ...] = ()
    # The Optuna study's database (any SQLAlchemy URL: sqlite:///..., postgresql://...); None =
    # sqlite:///<study dir>/optuna.db, which needs a local study dir. Never MLflow's database.
    optuna_storage: str | None = None
    search: str = "tpe"  # one of SEARCHES; fixed for the study's life (--resume refuses a change)
    scheduler: str = "asha"  # one of SCHEDULERS; likewise
    reduction_factor: int = ASHA_REDUCTION_FACTOR  # ASHA's eta: rungs at grace x eta^k, each keeps 1/eta; likewise
    tpe_startup_trials: int = TPE_STARTUP_TRIALS  # TPE's random start-up trials (first points count); likewise

    def __post_init__(self) -> None:
        if not isinstance(self.train, TrainConfig):
            raise ConfigError(f"study.train must be a TrainConfig, got {type(self.train).__name__}")
        if self.trials < 1:
            raise ConfigError(f"study.trials must be >= 1, got {self.trials}")
        if not 1 <= self.grace_epochs <= self.train.epochs:
            raise ConfigError(f"study.grace_epochs must be in 1..train.epochs={self.train.epochs}, got {self.grace_epochs}")
        if self.scaling.workers < 1:
            raise ConfigError(f"scaling.workers must be >= 1 in a study (each trial runs a TorchTrainer), got {self.scaling.workers}")
        if self.concurrency < 1:
            raise ConfigError(f"study.concurrency must be >= 1, got {self.concurrency}")
        if not self.name or "/" in self.name:
            raise ConfigError(f"study.name must be a non-empty name without '/', got {self.name!r}")
        if not self.storage:
            raise ConfigError("study.storage must be a directory path or an fsspec URL (s3://bucket/studies), got ''")
        if self.optuna_storage is not None and "://" not in self.optuna_storage:
            raise ConfigError(f"study.optuna_storage must be a database URL (sqlite:///..., postgresql://...), got {self.optuna_storage!r}")
        if self.search not in SEARCHES:
            raise ConfigError(f"study.search must be one of {list(SEARCHES)}, got {self.search!r}")
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(f"study.scheduler must be one of {list(SCHEDULERS)}, got {self.scheduler!r}")
        if self.reduction_factor < 2:
            raise ConfigError(f"study.reduction_factor must be >= 2 (ASHA keeps 1/reduction_factor per rung), got {self.reduction_factor}")
        if self.tpe_startup_trials < 1:
            raise ConfigError(f"study.tpe_startup_trials must be >= 1, got {self.tpe_startup_trials}")
        if self.mode not in (None, "max", "min"):
            raise ConfigError(f"study.mode must be 'max' or 'min', got {self.mode!r}")
        if isinstance(self.objectives, str):
            object.__setattr__(self, "objectives", parse_objectives(self.objectives))
        object.__setattr__(self, "objectives", tuple(self.objectives))
        object.__setattr__(self, "fixed", dict(self.fixed))
        if self.objectives:
            self.objective_specs  # noqa: B018 - validates the entries (raises ValueError)

    @property
    def study_dir(self) -> StudyDir:
        """``<storage>/<name>``: Tune's experiment, ``study.json``, the trials' Train runs."""
        return StudyDir(self.storage).child(self.name)

    @property
    def optuna_url(self) -> str:
        """The Optuna study's database URL (``optuna_storage``, else a sqlite file in the local study dir)."""
        return self.optuna_storage or default_optuna_url(self.study_dir)

    @property
    def objective_mode(self) -> str:
        if self.mode is not None:
            return self.mode
        from raysys.models import get_family

        return get_family(self.train.family).objective_mode

    @property
    def objective_specs(self) -> list[tuple[str, str]]:
        """[(reported metric, "max"|"min")]: the primary ``objective`` first, then the others.

        An entry without ``:max``/``:min`` takes the primary objective's mode. Other entries must
        be ``val/<metric>`` for one of the family's (aggregate) ``metric_names``, or any metric
        the trials report when the family is unknown.
        """
        if not self.objectives:
            return [(OBJECTIVE, self.objective_mode)]
        family_metrics, family_objective = _family_metrics(self.train.family)
        specs: list[tuple[str, str]] = []
        for entry in self.objectives:
            name, _, mode = entry.strip().partition(":")
            name, mode = name.strip(), (mode.strip() or self.objective_mode)
            if mode not in ("max", "min"):
                raise ConfigError(f"objectives: mode of {entry!r} must be 'max' or 'min'")
            if family_objective is not None and name == f"{VAL_PREFIX}{family_objective}":
                name = OBJECTIVE
            if not name:
                raise ConfigError(f"objectives: empty metric name in {list(self.objectives)!r}")
            if family_metrics is not None and name != OBJECTIVE and name.removeprefix(VAL_PREFIX) not in family_metrics:
                known = ", ".join([OBJECTIVE] + [f"{VAL_PREFIX}{m}" for m in family_metrics])
                raise ConfigError(f"objectives: {name!r} is not a metric of the {self.train.family} family ({known})")
            specs.append((name, mode))
        names = [name for name, _ in specs]
        if names[0] != OBJECTIVE:
            raise ConfigError(
                f"objectives: the first (primary) objective must be {OBJECTIVE!r} (the family's objective; ASHA, the "
                f"best trial and the champion use it), got {names[0]!r}"
            )
        if specs[0][1] != self.objective_mode:
            raise ConfigError(f"objectives: the primary objective's mode must be the study's mode {self.objective_mode!r}")
        if len(set(names)) != len(names):
            raise ConfigError(f"objectives: duplicate metric in {names!r}")
        return specs

    @property
    def multi_objective(self) -> bool:
        return len(self.objective_specs) > 1

    @property
    def objective_name(self) -> str:
        """The family's metric behind ``objective`` (recorded on registered versions)."""
        _, family_objective = _family_metrics(self.train.family)
        return f"{VAL_PREFIX}{family_objective}" if family_objective else OBJECTIVE

    def objectives_text(self) -> str:
        """``objective(max)`` or e.g. ``objective(max),val/disentanglement(max)`` (objective = the family's)."""
        return ",".join(f"{name}({mode})" for name, mode in self.objective_specs)


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


# --- where the study's databases live ---------------------------------------------------------
def default_optuna_url(study_dir: StudyDir) -> str:
    """``sqlite:///<study dir>/optuna.db``; a study dir on object storage has no default (``StudyError``)."""
    if study_dir.local is None:
        raise StudyError(remote_storage_needs_database(study_dir.url.rsplit("/", 1)[0]))
    return f"sqlite:///{study_dir.local / OPTUNA_FILE}"


def remote_storage_needs_database(storage: str) -> str:
    return (f"--storage {storage}: the Optuna study needs a database; pass --optuna-storage "
            "sqlite:////shared/optuna.db or postgresql://...")


def check_databases(storage: str, optuna_storage: str | None, tracking_uri: str | None) -> None:
    """A study on object storage needs its databases elsewhere: Optuna's (``optuna_storage``) and
    MLflow's (``tracking_uri``, None = not given: the default sqlite file beside ``storage``); and
    Optuna and MLflow never share one database (both keep an alembic version table).
    Raises ``ConfigError`` with one line naming the flag."""
    if optuna_storage is not None and "://" not in optuna_storage:
        raise ConfigError(f"--optuna-storage {optuna_storage}: not a database URL; pass sqlite:////abs/optuna.db or postgresql://...")
    remote = local_path(storage) is None
    if remote and not optuna_storage:
        raise ConfigError(remote_storage_needs_database(storage))
    if remote and not tracking_uri:
        raise ConfigError(f"--storage {storage}: MLflow needs a tracking database; pass --tracking-uri "
                          "(http://mlflow:5000, postgresql://...) or set MLFLOW_TRACKING_URI")
    if optuna_storage and tracking_uri and same_database(optuna_storage, tracking_uri):
        raise ConfigError(f"--optuna-storage {optuna_storage}: that is MLflow's tracking database; give the Optuna "
                          "study its own (another sqlite file, or another database on the same server)")


def same_database(a: str, b: str) -> bool:
    """Whether two SQLAlchemy URLs name one database (driver, credentials and query ignored)."""
    def key(url: str) -> tuple[str, str, str]:
        scheme, _, rest = url.partition("://")
        dialect = scheme.split("+", 1)[0].lower()
        if dialect == "sqlite":
            return dialect, "", str(local_path(rest[1:])) if rest.startswith("/") else rest
        location = rest.rsplit("@", 1)[-1].split("?", 1)[0]
        host, _, database = location.partition("/")
        return dialect, host.lower(), database
    return key(a) == key(b)


def study_choices(spec: StudySpec) -> dict[str, Any]:
    """The ``STUDY_CHOICES`` of ``spec`` (``study.json``; ``--resume`` refuses a change)."""
    return {name: getattr(spec, name) for name in STUDY_CHOICES}


def choice_defaults() -> dict[str, Any]:
    """``StudySpec``'s defaults of the ``STUDY_CHOICES``; also what a study.json written before a
    choice existed means (the default was then the only behaviour)."""
    return {f.name: f.default for f in dataclasses.fields(StudySpec) if f.name in STUDY_CHOICES}

"""From an experiment's rows to the runs to train: resolved overrides, switches this build lacks,
and rows that share one configuration (trained once, reported under each of their labels).

A row names its config as flat overrides. Resolution adds the budget (``train.*`` and the
family's ``model.*``), turns ``model.levels=LMAX`` into the preset's L_max and handles the
switches of a build that lacks them (contract of issue 14): a key whose value is the switch's
documented default is dropped (the build already behaves so); any other value skips the row
with the reason. Rows whose resolved configurations are equal share one run.

A batch holds slices of distinct training subjects. A row that trains on fewer subjects than
the budget's batch (``train.training_subjects=complete`` on a cohort with few complete subjects)
takes a batch of all of them and proportionally more steps per epoch, so it sees as many
training slices as every other row (``fit_batch``; the runs table notes it).
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Mapping

from raysys.config import ConfigError, from_flat, split_flat, to_flat
from raysys.names import MODEL_KEY, TRAIN_KEY
from raysys.reproduce.experiments import LMAX, Budget, Experiment, Variant
from raysys.train import TrainConfig

# Switches of issue 14 and the value that means "today's behaviour" (the contract's defaults).
PENDING_DEFAULTS: dict[str, Any] = {
    "model.posterior": "mixture",
    "train.modalities": (),
    "train.training_subjects": "all",
    "train.inputs": "normalised",
}
SEED_KEY = "train.seed"  # the grid's second axis; never part of a row's config


@dataclasses.dataclass
class Run:
    """One configuration to train (x seeds): ``key`` = its first row's label; ``labels`` every
    row it stands for; ``flat`` the ``train.*``/``model.*`` params of the trial."""

    key: str
    family: str
    flat: dict[str, Any]
    labels: list[str]
    note: str = ""  # how the run departs from the budget (``fit_batch``), for the runs table


@dataclasses.dataclass
class Plan:
    experiment: Experiment
    budget_name: str
    budget: Budget
    rows: list[Variant]  # every row of the tables, in order (also the skipped ones)
    runs: list[Run]
    skipped: dict[str, str]  # row label -> why it is not run
    dropped: dict[str, list[str]]  # row label -> switch keys left out at their default
    inputs: str  # "raw" (mmhvae reads the store's raw images) or "normalised"

    def run_of(self, label: str) -> Run | None:
        return next((r for r in self.runs if label in r.labels), None)


def has_switch(family: str, key: str) -> bool:
    """Whether this build's ``TrainConfig`` (``train.X``) or family config (``model.X``) has the field."""
    from raysys.models import get_family

    prefix, _, field = key.partition(".")
    cls = TrainConfig if prefix + "." == TRAIN_KEY else get_family(family).config_cls
    return field in {f.name for f in dataclasses.fields(cls)}


def store_has_raw(store: Any) -> bool:
    """Whether the store keeps the un-normalised images (converter ``--keep-raw``; False in builds without it)."""
    return bool(getattr(store, "has_raw", False))


def resolve(variant: Variant, budget: Budget, raw: bool) -> tuple[dict[str, Any], list[str], str | None]:
    """(flat params, switch keys dropped at their default, reason to skip or None)."""
    from raysys.models import make_config

    flat: dict[str, Any] = {f"{TRAIN_KEY}family": variant.family, f"{TRAIN_KEY}preset": budget.preset}
    flat.update({f"{TRAIN_KEY}{k}": v for k, v in budget.train.items()})
    flat.update({f"{MODEL_KEY}{k}": v for k, v in budget.model.get(variant.family, {}).items()})
    flat.update(variant.overrides)
    if raw and variant.family == "mmhvae":
        flat[f"{TRAIN_KEY}inputs"] = "raw"
    if flat.get(f"{MODEL_KEY}levels") == LMAX:
        flat[f"{MODEL_KEY}levels"] = make_config(variant.family, budget.preset).max_levels
    dropped = []
    for key in list(flat):
        if has_switch(variant.family, key):
            continue
        if key in PENDING_DEFAULTS and _same(flat[key], PENDING_DEFAULTS[key]):
            dropped.append(key)
            del flat[key]
        else:
            return flat, dropped, f"needs {key}={_text(flat[key])}, a switch this build does not have"
    train, model = split_flat(flat, bare=None)
    try:
        make_config(variant.family, budget.preset, model)
        from_flat(TrainConfig, train)
    except (ConfigError, ValueError) as err:
        raise ConfigError(f"row {variant.label!r}: {err}") from err
    return flat, dropped, None


def _same(a: Any, b: Any) -> bool:
    return (tuple(a) == tuple(b)) if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) else a == b


def _text(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def config_identity(family: str, flat: Mapping[str, Any]) -> str:
    """The full resolved configuration (every model and train field) as canonical JSON: rows
    that spell the same model differently (an override equal to the preset) share one run."""
    from raysys.models import make_config

    train, model = split_flat(flat, bare=None)
    config = make_config(family, str(train.get("preset", "tiny")), model)
    full = {**to_flat(config, prefix=MODEL_KEY), **to_flat(from_flat(TrainConfig, train), prefix=TRAIN_KEY)}
    full.pop(SEED_KEY, None)
    return json.dumps({k: _text(v) for k, v in sorted(full.items())})


def incomplete_training_subjects(store: Any, fold: int) -> int:
    """How many training-split subjects of ``fold`` miss a modality (what ``complete data`` removes)."""
    return sum(not all(store.available(int(i)).values()) for i in store.split_subjects("train", fold))


def sampled_subjects(flat: Mapping[str, Any]) -> tuple[Any, bool]:
    """(modalities or None = the store's, complete) that pick the training subjects a run samples."""
    return flat.get(f"{TRAIN_KEY}modalities") or None, flat.get(f"{TRAIN_KEY}training_subjects") == "complete"


def training_subject_count(store: Any, fold: int, flat: Mapping[str, Any]) -> int:
    """Training-split subjects of ``fold`` that a run with these params samples its batches from."""
    from raysys.data.selection import split_subjects

    return len(split_subjects(store, "train", fold, *sampled_subjects(flat)))


def fit_batch(flat: dict[str, Any], subjects: int) -> str:
    """Shrink ``train.batch_size`` to ``subjects`` when it is larger, with steps per epoch scaled
    up to keep the slices per epoch; returns the note ("" when the budget fits as it is)."""
    batch = int(flat.get(f"{TRAIN_KEY}batch_size", TrainConfig().batch_size))
    steps = flat.get(f"{TRAIN_KEY}max_steps_per_epoch")
    if subjects < 1 or batch <= subjects or steps is None:
        return ""
    flat[f"{TRAIN_KEY}batch_size"] = subjects
    flat[f"{TRAIN_KEY}max_steps_per_epoch"] = math.ceil(int(steps) * batch / subjects)
    return (f"{subjects} training subjects: batch {subjects} x {flat[f'{TRAIN_KEY}max_steps_per_epoch']} steps "
            f"per epoch instead of {batch} x {steps} (the same slices per epoch)")


def make_plan(experiment: Experiment, budget_name: str, store: Any, fold: int) -> Plan:
    """Resolve every row of ``experiment`` for ``budget_name`` on ``store``; raises ``ConfigError``."""
    if budget_name not in experiment.budgets:
        raise ConfigError(f"--budget {budget_name}: expected one of {sorted(experiment.budgets)}")
    budget = experiment.budgets[budget_name]
    raw = store_has_raw(store) and has_switch("mmhvae", f"{TRAIN_KEY}inputs")
    rows = experiment.rows(budget_name, store.modalities)
    runs: dict[str, Run] = {}
    skipped: dict[str, str] = {}
    dropped: dict[str, list[str]] = {}
    no_incomplete = incomplete_training_subjects(store, fold) == 0
    for row in rows:
        flat, left_out, reason = resolve(row, budget, raw)
        if left_out:
            dropped[row.label] = left_out
        if reason is None and no_incomplete and flat.get(f"{TRAIN_KEY}training_subjects") == "complete":
            reason = f"every training subject of fold {fold} has every modality: the same data as with all subjects"
        if reason is not None:
            skipped[row.label] = reason
            continue
        note = fit_batch(flat, training_subject_count(store, fold, flat))
        identity = row.family + config_identity(row.family, flat)
        if identity in runs:
            runs[identity].labels.append(row.label)
        else:
            runs[identity] = Run(row.label, row.family, flat, [row.label], note)
    return Plan(experiment, budget_name, budget, rows, list(runs.values()), skipped, dropped,
                "raw" if raw else "normalised")


def seeds_for(count: int | None, budget: Budget) -> list[int]:
    """Seeds 0 .. N-1 (``--seeds N``, default the budget's)."""
    n = budget.seeds if count is None else count
    if n < 1:
        raise ConfigError(f"--seeds {n}: must be >= 1")
    return list(range(n))


def check_sizes(plan: Plan, store: Any, fold: int) -> None:
    """Every run's batch fits the training subjects it samples (batches hold distinct subjects),
    before Ray starts; ``ConfigError`` naming the row otherwise."""
    from raysys.preflight import check_batch_fits

    for run in plan.runs:
        batch = int(run.flat.get(f"{TRAIN_KEY}batch_size", TrainConfig().batch_size))
        try:
            check_batch_fits(store, fold, batch, "train.batch_size", *sampled_subjects(run.flat))
        except ConfigError as err:
            raise ConfigError(f"row {run.key!r}: {err}") from None




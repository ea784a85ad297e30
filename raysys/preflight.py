"""Checks a driver runs before anything starts Ray, so a bad run fails in seconds, not inside workers.

One function per entry point runs them all after its flags are parsed: ``preflight_train``
(``jobs/train_<family>.py``) and ``preflight_study`` (``jobs/tune_<family>.py``);
``checked_overrides`` validates ``--set`` / ``--fix`` keys and values where the flags are read.
Each raises ``ConfigError`` with ONE line that names the flag or value and what would work; the
CLIs print it and exit with status 2. Nothing here imports or starts Ray.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import typing
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from raysys.config import ConfigError, coerce, parse_overrides, split_flat
from raysys.names import MODEL_KEY, TRAIN_KEY
from raysys.train.config import TrainConfig, run_modalities, train_config_from_flat

if typing.TYPE_CHECKING:
    from raysys.tune.study_dir import StudyDir

CONVERT = "python -m data_prep.convert"


# --- --set / --fix --------------------------------------------------------------------------
def checked_overrides(flag: str, pairs: Sequence[str], family: str,
                      space_names: Iterable[str] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    """``KEY=VALUE`` flags -> (train overrides, model overrides), un-prefixed, values as given.

    A key is ``train.<TrainConfig field>``, ``model.<field of the family's config>``, a bare model
    field, or one of ``space_names`` (a search space's own parameters, e.g. ``gan``; kept in the
    model overrides as given). Every value must read as its field's type. Raises ``ConfigError``
    naming the flag, the key and the closest known keys.
    """
    from raysys.models import get_family

    config_cls = get_family(family).config_cls
    fields = {TRAIN_KEY: _field_types(TrainConfig), MODEL_KEY: _field_types(config_cls)}
    spaces = {name for space_name in space_names for name in (space_name, _bare(space_name))}
    overrides = _parsed(flag, pairs)
    for key, value in overrides.items():
        prefix = TRAIN_KEY if key.startswith(TRAIN_KEY) else MODEL_KEY
        if _bare(key) in fields[prefix]:
            _check_type(flag, key, value, fields[prefix][_bare(key)])
        elif key not in spaces:
            known = [TRAIN_KEY + f for f in fields[TRAIN_KEY]] + [MODEL_KEY + f for f in fields[MODEL_KEY]]
            known += sorted(spaces - {_bare(s) for s in spaces if s.startswith(MODEL_KEY)})
            raise ConfigError(f"{flag} {key}={value}: {key!r} is no key of a {family} run; {_closest(key, known)}")
    return split_flat(overrides, bare="model")


def _check_type(flag: str, key: str, value: Any, annotation: Any) -> None:
    try:
        coerce(value, annotation, key)
    except ConfigError as err:
        raise ConfigError(f"{flag} {key}={value}: {err}") from None


def _parsed(flag: str, pairs: Sequence[str]) -> dict[str, Any]:
    try:
        return parse_overrides(list(pairs))
    except ConfigError as err:
        raise ConfigError(f"{flag}: {err}") from None


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _bare(key: str) -> str:
    return key.split(".", 1)[1] if key.startswith((TRAIN_KEY, MODEL_KEY)) else key


def _closest(key: str, known: Sequence[str]) -> str:
    """'did you mean ...' among the known keys (also matched without their prefix), else the key forms."""
    candidates = {_bare(k): k for k in known if k.startswith(TRAIN_KEY)}
    candidates |= {_bare(k): k for k in known if k.startswith(MODEL_KEY)} | {k: k for k in known}
    def likeness(candidate: str) -> float:
        return max(difflib.SequenceMatcher(None, form, candidate).ratio() for form in (key, _bare(key)))

    close = sorted((c for c in candidates if likeness(c) >= 0.6), key=likeness, reverse=True)
    matches = list(dict.fromkeys(candidates[c] for c in close))[:3]
    if matches:
        return "did you mean " + " or ".join(matches) + "?"
    return "use train.<TrainConfig field> or model.<field of the family's config> (see docs/CONTRACTS.md)"


# --- the store and the model ----------------------------------------------------------------
def checked_store(url: str, flag: str = "--data") -> Any:
    """The complete store at ``url``; ``ConfigError`` naming the flag if it is missing or incomplete."""
    from raysys.data import open_store
    from raysys.data.store import StoreError
    from raysys.urls import local_path

    path = local_path(url)
    if path is not None and not Path(path).exists():
        raise ConfigError(f"{flag} {url}: no such store; convert a cohort into it first: {CONVERT} --input COHORT --output {url}")
    try:
        return open_store(url)
    except StoreError as err:
        text = " ".join(str(err).split())
        hint = "" if "data_prep.convert" in text else f"; pass a store written by {CONVERT}"
        raise ConfigError(f"{flag} {text}{hint}") from None


def checked_modalities(train: TrainConfig, store: Any, flag: str = "--set") -> list[str]:
    """The run's modalities (``train.modalities`` in store order, all when empty); ``ConfigError``
    naming the flag and the store's modalities when one is not in the store."""
    try:
        return run_modalities(train, store.modalities)
    except ConfigError:
        unknown = [m for m in train.modalities if m not in store.modalities]
        raise ConfigError(
            f"{flag} train.modalities={','.join(train.modalities)}: {','.join(unknown)} is no modality of --data "
            f"{store.url}; use some of {','.join(store.modalities)}"
        ) from None


def check_model_fits_store(family: str, preset: str, model_overrides: Mapping[str, Any], store: Any, flag: str,
                           modalities: Sequence[str] | None = None) -> None:
    """Build the model as every worker will (the family's own checks: e.g. disentangle needs two or
    more modalities, mmhvae's ``anchor_modality`` must index one): on ``modalities`` (default the
    store's), with its value range. ``flag`` names where ``model_overrides`` came from."""
    from raysys.models import get_family, make_config

    given = " ".join(f"{flag} {k}={v}" for k, v in model_overrides.items())
    try:
        config = make_config(family, preset, dict(model_overrides))
    except (ConfigError, ValueError) as err:
        raise ConfigError(f"{given or '--preset ' + preset}: {err}") from None
    if hasattr(config, "data_range"):  # as the loop does
        config = dataclasses.replace(config, data_range=tuple(store.value_range))
    chosen = list(store.modalities if modalities is None else modalities)
    try:
        get_family(family)(config, chosen)
    except (ConfigError, ValueError) as err:
        model = f"the {family} model (--preset {preset}{' ' + given if given else ''})"
        if chosen != list(store.modalities):
            raise ConfigError(
                f"train.modalities={','.join(chosen)} (of --data {store.url}) cannot be used by {model}: "
                f"{' '.join(str(err).split())}; choose other train.modalities" + (f" or change {given}" if given else "")
            ) from None
        raise ConfigError(
            f"--data {store.url} holds the modalities {','.join(store.modalities)}, which {model} cannot use: "
            f"{' '.join(str(err).split())}; use a store converted with the modalities it needs ({CONVERT} --modalities ...)"
            + (f" or change {given}" if given else "")
        ) from None


def check_raw_inputs(family: str, train: TrainConfig, store: Any, flag: str = "--set") -> None:
    """``train.inputs=raw`` needs a store with raw images and a family that encodes them."""
    if train.inputs != "raw":
        return
    if not store.has_raw:
        raise ConfigError(f"{flag} train.inputs=raw: --data {store.url} has no raw images; convert the cohort again "
                          f"with {CONVERT} --keep-raw, or use train.inputs=normalised")
    from raysys.models import get_family, make_config

    try:
        get_family(family).config_for_raw_inputs(make_config(family, train.preset), store.raw_range)
    except ValueError as err:
        raise ConfigError(f"{flag} train.inputs=raw: {err}") from None


def check_batch_fits(store: Any, fold: int, batch_size: int, flag: str = "--batch-size",
                     modalities: Sequence[str] | None = None, complete: bool = False) -> None:
    """Batches hold slices of DISTINCT training subjects (every worker samples the whole train split):
    ``batch_size`` may not exceed the train split's subjects of ``fold`` that the run uses (those
    with any of ``modalities``, default the store's; every one of them when ``complete``)."""
    from raysys.data.selection import split_subjects

    try:
        subjects = len(split_subjects(store, "train", fold, modalities, complete))
    except ValueError as err:
        raise ConfigError(f"--fold {fold}: {err}; use --fold 0..{int(store.attrs['folds']) - 1}") from None
    if batch_size > subjects:
        sep = "=" if flag.startswith("--fix") else " "  # --fix train.batch_size=99, --batch-size 99
        if complete:
            names = ",".join(store.modalities if modalities is None else modalities)
            raise ConfigError(
                f"train.training_subjects=complete: the train split of fold {fold} in {store.url} has {subjects} subjects "
                f"with every one of {names}, fewer than {flag}{sep}{batch_size} (a batch holds slices of distinct subjects); "
                f"use {flag} <= {subjects} or train.training_subjects=all"
            )
        raise ConfigError(
            f"{flag}{sep}{batch_size}: the train split of fold {fold} in {store.url} has {subjects} subjects and a batch "
            f"holds slices of distinct subjects; use {flag} <= {subjects}"
        )


# --- a study's --resume ---------------------------------------------------------------------
def recorded_objectives(study_dir: StudyDir | str | Path, name: str, optuna_url: str | None = None) -> list[tuple[str | None, str]] | None:
    """[(metric, "max"|"min")] a study was created with: ``study.json``'s ``objectives`` when it
    records them, else the directions of the Optuna study in ``optuna_url`` (default: the sqlite
    file in a local study dir; metric names then unknown: None); None when neither exists."""
    from raysys.tune.optuna_adapter import optuna_storage, study_exists
    from raysys.tune.run import STUDY_FILE
    from raysys.tune.spec import default_optuna_url

    study_dir = _study_dir(study_dir)
    if study_dir.exists(STUDY_FILE):
        saved = json.loads(study_dir.read_text(STUDY_FILE)).get("objectives")
        if saved:
            return [(str(metric), str(mode)) for metric, mode in saved]
    url = optuna_url or default_optuna_url(study_dir)
    if not study_exists(url, name):  # or the driver stopped before Tune created the Optuna study
        return None
    import optuna

    study = optuna.load_study(study_name=name, storage=optuna_storage(url))
    return [(None, "max" if d == optuna.study.StudyDirection.MAXIMIZE else "min") for d in study.directions]


def recorded_choices(study_dir: StudyDir | str | Path) -> dict[str, Any] | None:
    """The ``STUDY_CHOICES`` a study was created with (``study.json``; one written before a
    choice existed means its default, ``choice_defaults``); None when there is no study.json."""
    from raysys.tune.run import STUDY_FILE
    from raysys.tune.spec import choice_defaults

    study_dir = _study_dir(study_dir)
    if not study_dir.exists(STUDY_FILE):
        return None
    saved = json.loads(study_dir.read_text(STUDY_FILE))
    return {key: type(default)(saved.get(key) or default) for key, default in choice_defaults().items()}


def check_resume(study_dir: StudyDir | str | Path, name: str, objectives: Sequence[tuple[str, str]],
                 optuna_url: str | None = None, *, search: str | None = None, scheduler: str | None = None,
                 reduction_factor: int | None = None, tpe_startup_trials: int | None = None) -> None:
    """``--resume`` needs the study's saved state and the objectives, ``--search``,
    ``--scheduler``, ``--reduction-factor`` and ``--tpe-startup-trials`` it was created with (Tune
    restores its saved searcher and scheduler, so a changed choice would be silently ignored).
    A choice left None is ``StudySpec``'s default."""
    from raysys.tune.run import TUNER_FILE
    from raysys.tune.spec import choice_defaults

    study_dir = _study_dir(study_dir)
    if not study_dir.exists(TUNER_FILE):
        raise ConfigError(f"--resume --name {name}: no study to resume at {study_dir} (no {TUNER_FILE}); run without --resume")
    defaults = choice_defaults()
    choices = recorded_choices(study_dir) or {}
    given = {"search": search, "scheduler": scheduler, "reduction_factor": reduction_factor,
             "tpe_startup_trials": tpe_startup_trials}
    for key, default in defaults.items():
        asked = default if given[key] is None else given[key]
        was, flag = choices.get(key, asked), key.replace("_", "-")
        if was != asked:
            fix = f"resume without --{flag}" if was == default else f"resume with --{flag} {was}"
            raise ConfigError(f"--{flag} {asked}: study {name!r} at {study_dir} was created with --{flag} {was}; {fix}")
    recorded = recorded_objectives(study_dir, name, optuna_url)
    if recorded is None:
        return
    names_known = all(metric is not None for metric, _ in recorded)
    same = list(recorded) == list(objectives) if names_known else [m for _, m in recorded] == [m for _, m in objectives]
    if same:
        return
    asked = ",".join(f"{metric}:{mode}" for metric, mode in objectives)
    if names_known:
        was = ",".join(f"{metric}:{mode}" for metric, mode in recorded)
        fix = "resume without --objectives" if len(recorded) == 1 else f"resume with --objectives {was}"
    else:
        was = f"{len(recorded)} objective(s) ({', '.join(m for _, m in recorded)})"
        fix = "resume with the --objectives it was started with"
    raise ConfigError(f"--objectives {asked}: study {name!r} at {study_dir} was created with {was}; {fix}")


# --- one function per entry point -------------------------------------------------------------
def preflight_train(family: str, train: TrainConfig, model_overrides: Mapping[str, Any]) -> None:
    """Every check of ``jobs/train_<family>.py`` that needs more than the flags themselves (those,
    ``--set`` keys and values included, are checked while the configs are read: ``checked_overrides``)."""
    store = checked_store(train.data)
    modalities = checked_modalities(train, store)
    check_raw_inputs(family, train, store)
    check_model_fits_store(family, train.preset, model_overrides, store, "--set", modalities)
    check_batch_fits(store, train.fold, train.batch_size, modalities=modalities, complete=train.training_subjects == "complete")


def preflight_study(family: str, args: Any, *, data: str, budget: Mapping[str, int],
                    objectives: Sequence[tuple[str, str]], storage: str, name: str, tracking_uri: str | None) -> None:
    """Every check of ``jobs/tune_<family>.py``: where the databases live (a study dir on object
    storage needs ``--optuna-storage`` and a tracking URI; Optuna and MLflow never share one:
    ``raysys.tune.spec.check_databases``), ``--fix`` keys and values (against the family's config,
    ``TrainConfig`` and the search space), the store, the model on the store's modalities, the
    batch, and ``--resume`` (the study exists and keeps its objectives, search and scheduler)."""
    from raysys.tune.spec import check_databases
    from raysys.tune.study_dir import StudyDir

    check_databases(storage, args.optuna_storage, tracking_uri)
    space_names = _space_names(family, args.preset, budget["epochs"], parse_overrides(args.fix))
    train_fixed, model_fixed = checked_overrides("--fix", args.fix, family, space_names)
    store = checked_store(data)
    chosen = train_config_from_flat({k: v for k, v in train_fixed.items() if k in ("modalities", "training_subjects", "inputs")},
                                    TrainConfig(preset=args.preset))
    modalities = checked_modalities(chosen, store, "--fix")
    check_raw_inputs(family, chosen, store, "--fix")
    complete = chosen.training_subjects == "complete"
    config_fields = _field_types(_config_cls(family))
    check_model_fits_store(family, args.preset, {k: v for k, v in model_fixed.items() if k in config_fields}, store, "--fix",
                           modalities)
    fold = int(train_fixed.get("fold", args.fold))
    if "batch_size" in train_fixed:
        check_batch_fits(store, fold, int(float(train_fixed["batch_size"])), "--fix train.batch_size", modalities, complete)
    else:
        flag = "--batch-size" if args.batch_size is not None else f"--batch-size (preset {args.preset}'s budget)"
        check_batch_fits(store, fold, budget["batch_size"], flag, modalities, complete)
    if args.resume:
        check_resume(StudyDir(storage).child(name), name, objectives, args.optuna_storage,
                     search=args.search, scheduler=args.scheduler, reduction_factor=args.reduction_factor,
                     tpe_startup_trials=args.tpe_startup_trials)


def _study_dir(study_dir: Any) -> Any:
    from raysys.tune.study_dir import StudyDir

    return study_dir if isinstance(study_dir, StudyDir) else StudyDir(study_dir)


def _config_cls(family: str) -> type:
    from raysys.models import get_family

    return get_family(family).config_cls


class _RecordingTrial:
    """Answers a define-by-run space's suggestions (low end, first choice) and records their names."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def suggest_float(self, name: str, low: float, high: float, **_: Any) -> float:
        self.names.append(name)
        return low

    def suggest_int(self, name: str, low: int, high: int, **_: Any) -> int:
        self.names.append(name)
        return low

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        self.names.append(name)
        return choices[0]


def _space_names(family: str, preset: str, epochs: int, fixed: Mapping[str, Any]) -> set[str]:
    """The parameters of the family's search space (its first points' keys and one dry run with
    ``fixed`` pinned, which also checks pinned values against the space's choices)."""
    from raysys.models import make_config
    from raysys.tune.space import FixedSpace, load_space

    try:
        max_levels = getattr(make_config(family, preset), "max_levels", None)
        space, points = load_space(family, max_levels=max_levels, epochs=epochs, preset=preset)
    except (ConfigError, ValueError) as err:
        raise ConfigError(f"--preset {preset}: {err}") from None
    trial = _RecordingTrial()
    try:
        FixedSpace(space, fixed)(trial)
    except (ConfigError, ValueError) as err:  # a pinned value outside the space's choices
        raise ConfigError(" ".join(str(err).split())) from None
    return set(trial.names) | {key for point in points for key in point}

"""Running a study: Tune over the trial driver, Optuna (TPE or random), ASHA (or none), an MLflow parent run, the registry.

Layout of a study ``<storage>/<name>/`` (an absolute shared path or an fsspec URL such as
``s3://bucket/studies``; any node of the cluster must reach it; ``study_dir.StudyDir``):
    tuner.pkl, experiment_state-*.json, <trial dirs>   Tune's own experiment (``Tuner.restore``)
    optuna.db                                        the Optuna study's sqlite, unless
                                                     ``StudySpec.optuna_storage`` names a database
                                                     (required when the study dir is remote; never
                                                     MLflow's database)
    study.json                                       the MLflow parent run id (so ``--resume``
                                                     keeps logging under the same parent), the
                                                     objectives, search and scheduler (which
                                                     ``--resume`` must not change)
    train/<trial id>/                                each trial's Ray Train run (checkpoints)
    pareto_front.json                                multi-objective studies only: the Pareto
                                                     trials (Optuna ``study.best_trials``)

Multi-objective (``StudySpec.objectives``, e.g. ``("objective", "val/disentanglement")``): the
Optuna study gets one direction per objective (TPE handles several), but ASHA, Tune's best
result and the champion rule use the primary (first) objective, which is always ``objective``.

Every run ends: the parent run ends FINISHED when a trial gave a finite objective, FAILED (tag
``raysys.error``) when none did or the driver raised, KILLED when it was interrupted (Ctrl-C,
or SIGTERM, e.g. ``ray job stop``); child runs still open are closed in each case. A SIGKILLed
driver closes nothing: ``--resume`` closes what it left open before Tune restarts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import signal
import threading
from typing import Any, Callable, Iterator

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter

from raysys.config import ConfigError, from_flat, split_flat, to_flat
from raysys.names import OBJECTIVE, TAG_CHECKPOINT, TAG_FAMILY, TAG_STORE, TAG_STUDY, TAG_STUDY_OBJECTIVES, TAG_TRIAL, TRAIN_KEY
from raysys.tracking import resolve_tracking_uri
from raysys.urls import local_path
from raysys.train import TrainConfig
from raysys.tune import study_tracking
from raysys.tune.optuna_adapter import (TaggedOptunaSearch, make_sampler, make_searcher, mark_orphaned_trials, pareto_front,
                                        study_exists)
from raysys.tune.results import PARETO_FILE, StudyOutcome, completed, summarise, trial_statuses
from raysys.tune.space import FixedSpace, load_space
from raysys.tune.spec import StudyError, StudySpec, check_databases, study_choices
from raysys.tune.study_dir import StudyDir, local_copy
from raysys.tune.trainable import TrialContext, run_trial, runs_in_process, trial_resources

STUDY_FILE = "study.json"
TUNER_FILE = "tuner.pkl"  # Tune's saved Tuner: a study that ``Tuner.restore`` can continue
SCALING_KEY = "scaling."  # the prefix raysys.train.fit logs ScalingSpec under
STUDY_KEY = "study."  # params of the fields only a study has


def run_study(spec: StudySpec, *, resume: bool = False, trainable: Callable | None = None) -> StudyOutcome:
    """Run (or ``resume``) the study ``spec``; returns its outcome after registering the champion.

    ``trainable`` replaces the trial driver (tests use small function trainables); it is called
    as ``trainable(config, context)`` with a ``TrialContext``.
    """
    try:
        check_databases(spec.storage, spec.optuna_storage, spec.tracking.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"))
    except ConfigError as err:
        raise StudyError(str(err)) from None
    study_dir = spec.study_dir
    has_state = study_dir.exists(TUNER_FILE)
    if resume and not has_state:
        raise StudyError(f"--resume: no study to resume at {study_dir} (no {TUNER_FILE}); run without --resume")
    if not resume and (has_state or study_exists(spec.optuna_url, spec.name)):
        raise StudyError(f"a study named {spec.name!r} already exists at {study_dir} or in {spec.optuna_url}; "
                         "pass --resume or another --name")
    study_dir.makedirs()
    # Snapshot Tune's experiment state (and the searcher) at least every second rather than every
    # 10 s, so a killed driver loses as little as possible; --resume restores that snapshot.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    # The default MLflow database lives beside a local storage (check_databases refused a remote one).
    tracking_uri = resolve_tracking_uri(spec.tracking.tracking_uri,
                                        default_dir=study_dir.local.parent if study_dir.local else None)
    data_id = store_id(spec.train.data)
    experiment = spec.tracking.experiment

    if resume:
        check_resume_matches(spec)
        parent_run_id = json.loads(study_dir.read_text(STUDY_FILE))["parent_run_id"]
        study_tracking.reopen_parent_run(tracking_uri, parent_run_id)
    else:
        parent_run_id = study_tracking.start_parent_run(
            tracking_uri, experiment, spec.name,
            params=study_params(spec, data_id),
            tags={**spec.tracking.tags, TAG_STUDY: spec.name, TAG_FAMILY: spec.train.family, TAG_STORE: data_id},
            space_text=_space_description(spec.train.family) if trainable is None else "",
        )
        # The objectives, search and scheduler (and their knobs) too: a later --resume must ask for the same ones
        # (raysys.preflight.check_resume); Tuner.restore would silently keep the saved searcher and scheduler.
        study_dir.write_text(STUDY_FILE, json.dumps({"parent_run_id": parent_run_id, "tracking_uri": tracking_uri,
                                                        "objectives": [list(o) for o in spec.objective_specs],
                                                        **study_choices(spec)}))

    try:
        with sigterm_as_interrupt():
            if resume:  # what a killed driver left open, before Tune reopens the runs it continues
                study_tracking.close_left_open_runs(tracking_uri, experiment, parent_run_id, trial_statuses(study_dir),
                                                    spec.train.epochs)
            outcome = _tune(spec, resume, trainable, tracking_uri, parent_run_id, data_id)
    except KeyboardInterrupt:
        _stop(spec, tracking_uri, parent_run_id, "KILLED", "interrupted (Ctrl-C or SIGTERM); --resume continues the study")
        raise
    except BaseException as err:
        _stop(spec, tracking_uri, parent_run_id, "FAILED", f"{type(err).__name__}: {err}")
        raise
    study_tracking.end_parent_run(tracking_uri, parent_run_id, *(("FAILED", outcome.failure) if outcome.failure else ()))
    return outcome


def _tune(spec: StudySpec, resume: bool, trainable: Callable | None, tracking_uri: str, parent_run_id: str,
          data_id: str) -> StudyOutcome:
    """Tune's part of ``run_study``: fit, read the results, record them, register the champion."""
    study_dir = spec.study_dir
    context = TrialContext(
        train=shared_train(spec),
        scaling=spec.scaling,
        tracking=dataclasses.replace(spec.tracking, tracking_uri=tracking_uri, parent_run_id=parent_run_id,
                                     tags={**spec.tracking.tags, TAG_STUDY: spec.name}),
        train_storage=study_dir.join("train"),
    )
    # A custom trainable (tests) is a driver only; raysys' own trains in process when it can.
    resources = driver_resources() if trainable is not None else trial_resources(spec.scaling, context.train_storage,
                                                                                  driver_resources())
    wrapped = tune.with_resources(tune.with_parameters(trainable or run_trial, context=context), resources)
    if resume:
        tuner = tune.Tuner.restore(study_dir.url, trainable=wrapped, resume_unfinished=True, restart_errored=False)
    else:
        tuner = build_tuner(spec, wrapped, reuse_actors=trainable is None and runs_in_process(spec.scaling, context.train_storage))
    results = tuner.fit()
    if not completed(results):  # Tune stops on the first Ctrl-C and returns what it has
        raise KeyboardInterrupt("Tune stopped before every trial ended")
    mark_orphaned_trials(spec.optuna_url, spec.name)

    mode = spec.objective_mode
    outcome = summarise(results, mode, study_dir, parent_run_id, tracking_uri)
    outcome.objectives = spec.objective_specs
    if spec.multi_objective:
        outcome.pareto_front = pareto_front(spec.optuna_url, spec.name, [name for name, _ in outcome.objectives])
        text = json.dumps(outcome.pareto_front, indent=2, default=str)
        study_dir.write_text(PARETO_FILE, text)
        study_tracking.log_pareto_front(tracking_uri, parent_run_id, outcome.pareto_front, text, PARETO_FILE)
    study_tracking.log_outcome(tracking_uri, parent_run_id, outcome)
    # No run is left RUNNING: ASHA-stopped trials never reach their loop's own end.
    experiment = spec.tracking.experiment
    study_tracking.close_trial_runs(tracking_uri, experiment, parent_run_id, outcome.errored, spec.train.epochs)
    if spec.register and outcome.best_checkpoint:
        from raysys.registry.champion import publish

        run_id = study_tracking.find_trial_run(tracking_uri, experiment, parent_run_id, outcome.best_trial) or parent_run_id
        tags = {TAG_STUDY: spec.name, TAG_TRIAL: str(outcome.best_trial), TAG_CHECKPOINT: outcome.best_checkpoint,
                **({TAG_STUDY_OBJECTIVES: spec.objectives_text()} if spec.multi_objective else {})}
        with local_copy(outcome.best_checkpoint) as checkpoint_dir:  # one on object storage is downloaded
            outcome.champion = publish(
                tracking_uri=tracking_uri, family=spec.train.family, checkpoint_dir=checkpoint_dir,
                objective_name=spec.objective_name, objective_value=float(outcome.best_objective), mode=mode,
                store_id=data_id, run_id=run_id, tags=tags,
            )
        study_tracking.log_champion(tracking_uri, parent_run_id, outcome.champion)
    return outcome


def check_resume_matches(spec: StudySpec) -> None:
    """A resumed study keeps the objectives, search and scheduler it was created with (the
    check ``jobs/tune_*.py --resume`` runs before Ray starts, also for callers of ``run_study``)."""
    from raysys.preflight import check_resume

    try:
        check_resume(spec.study_dir, spec.name, spec.objective_specs, spec.optuna_storage, **study_choices(spec))
    except ConfigError as err:
        raise StudyError(str(err)) from None


def _stop(spec: StudySpec, tracking_uri: str, parent_run_id: str, status: str, reason: str) -> None:
    """The driver stops before the study finished: end the open child runs and the parent run."""
    study_tracking.kill_trial_runs(tracking_uri, spec.tracking.experiment, parent_run_id, reason)
    study_tracking.end_parent_run(tracking_uri, parent_run_id, status, reason)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block SIGTERM (``ray job stop``, ``kill``) raises ``KeyboardInterrupt`` in the main
    thread, so the study ends its runs as for Ctrl-C; the previous handler is restored after.
    Off the main thread (where Python cannot install handlers) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def shared_train(spec: StudySpec) -> TrainConfig:
    """The training every trial shares: ``spec.train`` with the pinned ``train.*`` params (``--fix``)
    and a local store path made absolute (trials ``chdir``)."""
    train_fixed, _ = split_flat({k: v for k, v in spec.fixed.items() if k.startswith(TRAIN_KEY)}, bare=None)
    train = from_flat(TrainConfig, train_fixed, base=spec.train)
    return dataclasses.replace(train, data=(local_path(train.data) or train.data) if train.data else "")


def study_params(spec: StudySpec, data_id: str) -> dict[str, Any]:
    """The parent run's params: ``train.*`` and ``scaling.*`` as every child logs them (the values
    all trials share), ``data.store_id`` as the children log it, and ``study.*`` for the fields
    only a study has, so studies and their trials compare in the MLflow UI."""
    params: dict[str, Any] = {**to_flat(shared_train(spec), prefix=TRAIN_KEY), **to_flat(spec.scaling, prefix=SCALING_KEY)}
    params["data.store_id"] = data_id
    study_only = {
        "name": spec.name, "storage": spec.storage, "trials": spec.trials, "grace_epochs": spec.grace_epochs,
        "concurrency": spec.concurrency, "register": spec.register, "mode": spec.objective_mode,
        "objective": spec.objective_name, "objectives": spec.objectives_text(),
        **study_choices(spec),
        "sampler": f"optuna.{type(make_sampler(spec.search, spec.train.seed)).__name__}(seed={spec.train.seed}"
                   + (f", n_startup_trials={spec.tpe_startup_trials}" if spec.search == "tpe" else "")
                   + "), the paper's (or the preset's) values first",
        "early_stopping": _early_stopping_text(spec),
        **{f"fixed.{k}": v for k, v in spec.fixed.items()},
    }
    params.update({f"{STUDY_KEY}{k}": v for k, v in study_only.items()})
    return params


def make_study_searcher(spec: StudySpec) -> TaggedOptunaSearch:
    """The study's ``OptunaSearch``: the family's define-by-run space with ``--fix`` applied, the
    paper's (or the preset's) values first, ``spec.search``'s seeded sampler, the study's database."""
    space, paper_points = load_space(spec.train.family, max_levels=_max_levels(spec), epochs=spec.train.epochs,
                                     preset=spec.train.preset)
    fixed_space = FixedSpace(space, spec.fixed)
    return make_searcher(
        fixed_space, spec.objective_specs, first_points=fixed_space.points(paper_points)[: spec.trials],
        seed=spec.train.seed, study_name=spec.name, storage_url=spec.optuna_url, search=spec.search,
        tpe_startup_trials=spec.tpe_startup_trials,
    )


def build_tuner(spec: StudySpec, trainable: Any, reuse_actors: bool = False) -> tune.Tuner:
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric=OBJECTIVE,
            mode=spec.objective_mode,
            search_alg=ConcurrencyLimiter(make_study_searcher(spec), max_concurrent=spec.concurrency),
            scheduler=make_scheduler(spec),
            num_samples=spec.trials,
            # Trials that train in their own process reuse the actor for the next trial: imports
            # and the preloaded store stay warm. (A TorchTrainer's thread outlives Tune's 2 s
            # reset wait while its worker group shuts down, so those actors are not reused.)
            reuse_actors=reuse_actors,
        ),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=StudyDir(spec.storage).url,  # a path or a URL (s3://...): Ray writes through pyarrow
            # A failing trial (e.g. a nan loss) ends as ERROR with its reason; the study goes on.
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            verbose=1,
        ),
    )


def make_scheduler(spec: StudySpec) -> TrialScheduler:
    """``spec.scheduler``: "asha" -> ASHA on the epochs (``grace_epochs`` .. ``train.epochs``, each rung
    keeping 1/``reduction_factor``);
    "none" -> FIFO: no early stopping, every trial trains ``train.epochs`` epochs."""
    if spec.scheduler == "none":
        return FIFOScheduler()
    return ASHAScheduler(time_attr="training_iteration", max_t=spec.train.epochs, grace_period=spec.grace_epochs,
                         reduction_factor=spec.reduction_factor)


def _early_stopping_text(spec: StudySpec) -> str:
    if spec.scheduler == "none":
        return f"none (FIFO: every trial trains train.epochs={spec.train.epochs} epochs)"
    return (f"ASHA(time_attr=training_iteration, grace_period={spec.grace_epochs}, max_t={spec.train.epochs}, "
            f"reduction_factor={spec.reduction_factor})")


def driver_resources() -> dict[str, float]:
    """Resources of a trial driver that launches a TorchTrainer (whose workers get their own).

    A driver on a CPU would deadlock a 2-core box (driver + worker > 2), so where the cluster
    offers the custom resource ``trial_driver`` (our local Ray and the demo head do) the driver
    takes one of those; elsewhere it takes a sliver of a CPU.
    """
    if ray.cluster_resources().get("trial_driver", 0) >= 1:
        return {"trial_driver": 1}
    return {"CPU": 0.01}


def store_id(data: str) -> str:
    if not data:
        return "none"
    from raysys.data import open_store

    return open_store(data).store_id


def _space_description(family: str) -> str:
    return importlib.import_module(f"search_spaces.{family}").__doc__ or ""


def _max_levels(spec: StudySpec) -> int | None:
    """L_max of the family's preset, for spaces that sweep a hierarchy depth (None otherwise)."""
    try:
        from raysys.models import make_config

        return getattr(make_config(spec.train.family, spec.train.preset), "max_levels", None)
    except Exception:  # noqa: BLE001 - a space without a model family behind it
        return None

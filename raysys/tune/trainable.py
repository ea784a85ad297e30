"""The trial driver: one Tune trial = one training run, named by the Tune trial id.

* Multi-worker trials (``scaling.workers > 1``) and trials whose storage is not a local path:
  one ``raysys.train.fit`` run (a TorchTrainer). Train inside Tune works only this way in Ray
  2.60 (see stack-notes): a function trainable that launches the TorchTrainer with
  ``TuneReportCallback``, so Tune sees every epoch's metrics (and ``checkpoint_path``) and ASHA
  can stop the trial between epochs.
* Single-worker trials: ``raysys.train.train_local`` inside the trial's own process, which then
  holds the worker's CPUs/GPUs itself (``trial_resources``). No worker group, placement group or
  second process: the TorchTrainer's start-up cost (~10 s per trial here) is gone. Checkpoints go
  to the same ``<train storage>/<trial id>/checkpoint_epoch=<n>/`` and every epoch reports the
  same metrics and ``checkpoint_path``.

Either way a resumed study continues the same run directory and the same MLflow child run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

from raysys.config import from_flat, split_flat
from raysys.names import CONFIG_PREFIXES, TAG_SPACE, TAG_TRIAL
from raysys.train import ScalingSpec, TrackingSpec, TrainConfig
from raysys.urls import local_path

# What TuneReportCallback reports for a Train checkpoint; the in-process path reports the same key.
CHECKPOINT_KEY = "checkpoint_path"


@dataclasses.dataclass(frozen=True)
class TrialContext:
    """What every trial of a study shares (picklable; handed over by ``tune.with_parameters``).

    The study's own configs, resolved on the driver: ``train.data`` absolute, ``tracking`` with
    the resolved URI, the study's parent run and the study's tags.
    """

    train: TrainConfig  # every trial's base; sampled ``train.*`` params override it
    scaling: ScalingSpec
    tracking: TrackingSpec
    train_storage: str  # absolute dir (or URL) where the trials' Train runs keep checkpoints


def trial_configs(params: Mapping[str, Any], context: TrialContext) -> tuple[TrainConfig, dict[str, Any], dict[str, str]]:
    """Sampled params -> (TrainConfig, model overrides, space tags) for ``raysys.train.fit``.

    Keys with a ``train.``/``model.`` prefix are config overrides; any other key is a choice of
    the space itself (e.g. ``"gan": "off"``), recorded as the tag ``raysys.space.<key>``.
    """
    config_keys = {k: v for k, v in params.items() if k.startswith(CONFIG_PREFIXES)}
    train_over, model_over = split_flat(config_keys, bare=None)
    train = from_flat(TrainConfig, train_over, base=context.train)
    tags = {f"{TAG_SPACE}{k}": str(v) for k, v in params.items() if k not in config_keys}
    return train, model_over, tags


def runs_in_process(scaling: ScalingSpec, train_storage: str) -> bool:
    """Whether a study's trials train inside the trial process (one worker, local storage)."""
    return scaling.workers == 1 and local_path(train_storage) is not None


def trial_resources(scaling: ScalingSpec, train_storage: str, driver: Mapping[str, float]) -> dict[str, float]:
    """What one trial reserves: the worker's own CPUs/GPUs when it trains in process, else only
    the ``driver`` share (its TorchTrainer's workers reserve theirs)."""
    if not runs_in_process(scaling, train_storage):
        return dict(driver)
    resources = {"CPU": scaling.cpus_per_worker}
    if scaling.gpus_per_worker > 0:
        resources["GPU"] = scaling.gpus_per_worker
    return resources


def run_trial(config: dict[str, Any], context: TrialContext) -> None:
    """Tune function trainable: train one configuration, reporting every epoch to Tune."""
    import ray.tune

    trial_id = ray.tune.get_context().get_trial_id()
    train, model_overrides, tags = trial_configs(config, context)
    tracking = dataclasses.replace(context.tracking, tags={**context.tracking.tags, TAG_TRIAL: trial_id, **tags})
    if runs_in_process(context.scaling, context.train_storage):
        _train_in_process(train, model_overrides, tracking, trial_id, context)
    else:
        _train_with_workers(train, model_overrides, tracking, trial_id, context)


def _train_in_process(train: TrainConfig, model_overrides: dict[str, Any], tracking: TrackingSpec, trial_id: str,
                      context: TrialContext) -> None:
    import ray.tune

    from raysys.train import train_local

    def report(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        ray.tune.report({**metrics, CHECKPOINT_KEY: checkpoint_dir or ""})

    train_local(train, model_overrides, report=report, tracking=tracking, run_name=trial_id,
                checkpoint_dir=Path(local_path(context.train_storage)) / trial_id)


def _train_with_workers(train: TrainConfig, model_overrides: dict[str, Any], tracking: TrackingSpec, trial_id: str,
                        context: TrialContext) -> None:
    from ray.tune.integration.ray_train import TuneReportCallback

    from raysys.train import fit

    fit(
        train,
        model_overrides,
        context.scaling,
        run_name=trial_id,
        storage=context.train_storage,
        tracking=tracking,
        callbacks=[TuneReportCallback()],
        max_failures=0,
    )

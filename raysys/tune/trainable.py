"""The trial driver: one Tune trial = one ``raysys.train.fit`` run (a TorchTrainer).

Train inside Tune works only this way in Ray 2.60 (see stack-notes): a function trainable that
launches the TorchTrainer with ``TuneReportCallback``, so Tune sees every epoch's metrics (and
``checkpoint_path``) and ASHA can stop the trial between epochs. The Train run is named by the
Tune trial id, so a resumed study continues the same Train run and the same MLflow child run.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from raysys.tune.space import split_params


@dataclasses.dataclass(frozen=True)
class TrialContext:
    """What every trial of a study shares (picklable; handed over by ``tune.with_parameters``)."""

    family: str
    preset: str
    data: str  # absolute path or URL of the store
    train_storage: str  # absolute dir (or URL) where the trials' Train runs keep checkpoints
    train: Mapping[str, Any]  # flat TrainConfig fields every trial uses (epochs, batch_size, ...)
    workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    tracking_uri: str | None = None
    experiment: str = "raysys"
    parent_run_id: str | None = None
    study: str = ""


def trial_configs(params: Mapping[str, Any], context: TrialContext):
    """Sampled params -> (TrainConfig, model overrides, extra tags) for ``raysys.train.fit``."""
    from raysys.config import from_flat
    from raysys.train import TrainConfig

    train_over, model_over = split_params(params)
    base = {"family": context.family, "preset": context.preset, "data": context.data}
    train = from_flat(TrainConfig, {**base, **context.train, **train_over})
    # Space-internal choices (e.g. "gan": "off") are not config fields: record them as tags.
    tags = {f"raysys.space.{k}": str(v) for k, v in params.items() if not k.startswith(("model.", "train."))}
    return train, model_over, tags


def run_trial(config: dict[str, Any], context: TrialContext) -> None:
    """Tune function trainable: fit one configuration, reporting every epoch to Tune."""
    import ray.tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from raysys.train import ScalingSpec, TrackingSpec, fit

    trial_id = ray.tune.get_context().get_trial_id()
    train, model_overrides, tags = trial_configs(config, context)
    scaling = ScalingSpec(
        workers=context.workers, gpus_per_worker=context.gpus_per_worker, cpus_per_worker=context.cpus_per_worker
    )
    tracking = TrackingSpec(
        tracking_uri=context.tracking_uri,
        experiment=context.experiment,
        parent_run_id=context.parent_run_id,
        tags={"raysys.study": context.study, "raysys.trial_id": trial_id, **tags},
    )
    fit(
        train,
        model_overrides,
        scaling,
        run_name=trial_id,
        storage=context.train_storage,
        tracking=tracking,
        callbacks=[TuneReportCallback()],
        max_failures=0,
    )

"""The trial driver: one Tune trial = one ``raysys.train.fit`` run (a TorchTrainer).

Train inside Tune works only this way in Ray 2.60 (see stack-notes): a function trainable that
launches the TorchTrainer with ``TuneReportCallback``, so Tune sees every epoch's metrics (and
``checkpoint_path``) and ASHA can stop the trial between epochs. The Train run is named by the
Tune trial id, so a resumed study continues the same Train run and the same MLflow child run.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from raysys.config import from_flat, split_flat
from raysys.names import CONFIG_PREFIXES, TAG_SPACE, TAG_TRIAL
from raysys.train import ScalingSpec, TrackingSpec, TrainConfig


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


def run_trial(config: dict[str, Any], context: TrialContext) -> None:
    """Tune function trainable: fit one configuration, reporting every epoch to Tune."""
    import ray.tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from raysys.train import fit

    trial_id = ray.tune.get_context().get_trial_id()
    train, model_overrides, tags = trial_configs(config, context)
    tracking = dataclasses.replace(context.tracking, tags={**context.tracking.tags, TAG_TRIAL: trial_id, **tags})
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

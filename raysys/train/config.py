"""Typed configs of a training run and their flat ``{"train.*", "model.*"}`` form.

``TrainConfig`` is what the loop needs besides the model; ``ScalingSpec`` and ``TrackingSpec``
say where it runs and where it is recorded. The flat form is what MLflow params, Tune search
spaces and ``--set key=value`` overrides use (see ``raysys.config``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, Mapping, Sequence

from raysys.config import ConfigError, from_flat, to_flat
from raysys.names import MODEL_KEY, TRAIN_KEY


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """What the train loop needs besides the model config.

    ``data`` is a store URL (absolute local path or fsspec URL, readable from every node).
    ``max_steps_per_epoch`` / ``max_val_steps`` cap the batches per rank (0 = all), for smoke runs.
    ``amp``: "auto" = bf16 autocast on GPU, none on CPU; "bf16" forces it on GPU; "off" never.
    ``modalities``: the store modalities the model is built on and sees (empty = all of them;
    used in the store's order, see ``run_modalities``). ``training_subjects``: "all" training-split
    subjects with any of them, or only the "complete" ones that have every one (validation and
    test splits are never filtered this way). ``inputs``: "normalised" (the store's images are
    inputs and targets) or "raw" (the model encodes the store's raw images, ``--keep-raw``, and
    reconstructs the normalised ones: harmonisation; families that support it, e.g. mmhvae).
    """

    family: str = "disentangle"
    preset: str = "tiny"
    data: str = ""
    fold: int = 0
    epochs: int = 10
    batch_size: int = 8
    grad_clip: float = 1.0
    seed: int = 0
    hide_prob: float = 0.0
    loader_workers: int = 0
    max_steps_per_epoch: int = 0
    max_val_steps: int = 0
    amp: Literal["auto", "bf16", "off"] = "auto"
    modalities: tuple[str, ...] = ()
    training_subjects: Literal["all", "complete"] = "all"
    inputs: Literal["normalised", "raw"] = "normalised"

    def __post_init__(self) -> None:
        object.__setattr__(self, "modalities", tuple(self.modalities))  # a list from JSON or a checkpoint
        if len(set(self.modalities)) != len(self.modalities):
            raise ConfigError(f"train.modalities names a modality twice: {list(self.modalities)}")
        if self.training_subjects not in ("all", "complete"):
            raise ConfigError(f"train.training_subjects must be 'all' or 'complete', got {self.training_subjects!r}")
        if self.inputs not in ("normalised", "raw"):
            raise ConfigError(f"train.inputs must be 'normalised' or 'raw', got {self.inputs!r}")
        if not self.family:
            raise ConfigError("train.family must name a model family")
        if self.epochs < 1:
            raise ConfigError(f"train.epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"train.batch_size must be >= 1, got {self.batch_size}")
        if self.fold < 0:
            raise ConfigError(f"train.fold must be >= 0, got {self.fold}")
        if self.grad_clip < 0:
            raise ConfigError(f"train.grad_clip must be >= 0 (0 = no clipping), got {self.grad_clip}")
        if not 0.0 <= self.hide_prob < 1.0:
            raise ConfigError(f"train.hide_prob must be in [0, 1), got {self.hide_prob}")
        for name in ("loader_workers", "max_steps_per_epoch", "max_val_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be >= 0, got {getattr(self, name)}")


@dataclasses.dataclass(frozen=True)
class ScalingSpec:
    """Ray Train workers. ``workers=0`` runs the loop in this process (Train "local mode")."""

    workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    placement: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ConfigError(f"scaling.workers must be >= 0, got {self.workers}")
        if self.gpus_per_worker < 0:
            raise ConfigError(f"scaling.gpus_per_worker must be >= 0, got {self.gpus_per_worker}")
        if self.cpus_per_worker <= 0:
            raise ConfigError(f"scaling.cpus_per_worker must be > 0, got {self.cpus_per_worker}")


@dataclasses.dataclass(frozen=True)
class TrackingSpec:
    """Where rank 0 records the run (see ``raysys.tracking``).

    ``tracking_uri=None``: ``MLFLOW_TRACKING_URI`` or ``sqlite:////<cwd>/mlflow.db``, resolved
    on the driver. ``parent_run_id`` nests the run (tag ``mlflow.parentRunId``), e.g. under a
    Tune study's run. ``tags`` are added to the run's tags.
    """

    tracking_uri: str | None = None
    experiment: str = "raysys"
    parent_run_id: str | None = None
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)


def run_modalities(train: TrainConfig, store_modalities: Sequence[str]) -> list[str]:
    """The modalities a run's model is built on: ``train.modalities`` in the store's order (so
    ``t2,flair`` and ``flair,t2`` give the same model), or every store modality when empty.
    Raises ``ConfigError`` naming the unknown ones."""
    if not train.modalities:
        return list(store_modalities)
    unknown = [m for m in train.modalities if m not in store_modalities]
    if unknown:
        raise ConfigError(
            f"train.modalities={','.join(train.modalities)}: {','.join(unknown)} not in the store's modalities "
            f"{','.join(store_modalities)}"
        )
    return [m for m in store_modalities if m in train.modalities]


def flat_run_config(train: TrainConfig, model_config: Any) -> dict[str, Any]:
    """The full flat config of a run: ``{"train.<field>": ..., "model.<field>": ...}``."""
    flat = to_flat(train, prefix=TRAIN_KEY)
    flat.update(to_flat(model_config, prefix=MODEL_KEY))
    return flat


def train_config_from_flat(flat: Mapping[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """A TrainConfig from un-prefixed flat keys (``{"epochs": "3"}``), strings coerced by type."""
    return from_flat(TrainConfig, flat, base=base)

"""Training for every model family: ``fit`` (Ray Train), ``train_local`` (this process, no Ray).

Both run the same epochs (``raysys.train.epoch_loop``). See docs/CONTRACTS.md section 4 and the
README section "Training with Ray Train". The Ray parts (``fit``, ``train_loop_per_worker``) are
imported on first use, so ``from raysys.train import train_local`` does not import Ray.
"""

from typing import Any

from raysys.names import OBJECTIVE
from raysys.train.checkpoint import build_state, load_state
from raysys.train.config import ScalingSpec, TrackingSpec, TrainConfig, flat_run_config
from raysys.train.epoch_loop import NonFiniteLossError
from raysys.train.local import LocalResult, train_local

_RAY_PARTS = {"fit": "raysys.train.trainer", "train_loop_per_worker": "raysys.train.loop"}


def __getattr__(name: str) -> Any:
    if name in _RAY_PARTS:
        import importlib

        return getattr(importlib.import_module(_RAY_PARTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "OBJECTIVE",
    "LocalResult",
    "NonFiniteLossError",
    "ScalingSpec",
    "TrackingSpec",
    "TrainConfig",
    "build_state",
    "fit",
    "flat_run_config",
    "load_state",
    "train_local",
    "train_loop_per_worker",
]

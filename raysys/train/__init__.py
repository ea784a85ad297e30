"""Ray Train for every model family: ``fit`` (driver) and ``train_loop_per_worker`` (workers).

See docs/CONTRACTS.md section 4 and the README section "Training with Ray Train".
"""

from raysys.train.checkpoint import load_state
from raysys.train.config import ScalingSpec, TrackingSpec, TrainConfig, flat_run_config, split_overrides
from raysys.train.loop import OBJECTIVE, NonFiniteLossError, train_loop_per_worker
from raysys.train.trainer import fit

__all__ = [
    "OBJECTIVE",
    "NonFiniteLossError",
    "ScalingSpec",
    "TrackingSpec",
    "TrainConfig",
    "fit",
    "flat_run_config",
    "load_state",
    "split_overrides",
    "train_loop_per_worker",
]

"""Shared by the registry tests: a raysys.train checkpoint written from a freshly built family."""

from __future__ import annotations

from pathlib import Path

import torch

from raysys.models import build_family
from raysys.train import TrainConfig
from raysys.train.checkpoint import build_state, save_state

MODALITIES = ("t1", "t1gd", "t2", "flair")


def write_checkpoint(directory: Path, family: str, seed: int = 0, **overrides) -> Path:
    """A checkpoint directory as raysys.train.fit writes it (CONTRACTS section 4), after one epoch."""
    torch.manual_seed(seed)
    fam = build_family(family, "tiny", MODALITIES, overrides)
    save_state(directory, build_state(TrainConfig(family=family, preset="tiny"), fam, epoch=1, best_metric=0.0))
    return directory

"""Shared by the registry tests: a raysys.train checkpoint written from a freshly built family."""

from __future__ import annotations

from pathlib import Path

import torch

from raysys.config import to_flat
from raysys.models import build_family
from raysys.train.checkpoint import rng_state, save_state

MODALITIES = ("t1", "t1gd", "t2", "flair")


def write_checkpoint(directory: Path, family: str, seed: int = 0, **overrides) -> Path:
    """A checkpoint directory as raysys.train.fit writes it (CONTRACTS section 4)."""
    torch.manual_seed(seed)
    fam = build_family(family, "tiny", MODALITIES, overrides)
    state = {
        "family": family,
        "modalities": list(MODALITIES),
        "model_config": to_flat(fam.config),
        "train_config": {"family": family, "preset": "tiny"},
        "family_state": fam.state_dict(),
        "epoch": 1,
        "best_metric": 0.0,
        "rng": rng_state(),
    }
    save_state(directory, state)
    return directory

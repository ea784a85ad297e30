"""Tiny real upstream models (saved model directories) and segmenter families built on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from raysys.models import build_family, build_model
from raysys.registry import save_model_dir
from raysys.registry.format import read_model_dir
from raysys.segment.frozen import frozen_tensors, mode_overrides, write_frozen_parts

MODALITIES = ("t1", "t1gd", "t2", "flair")
UPSTREAM_CONFIG = {"disentangle": {"image_size": (64, 64)}, "mmhvae": {"image_size": 64}}
BINS = 5


def save_upstream(directory: Path, family: str, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    module = build_model(family, "tiny", MODALITIES, **UPSTREAM_CONFIG[family])
    return save_model_dir(directory, family, "tiny", MODALITIES, UPSTREAM_CONFIG[family], module.state_dict(), {"test": True})


def cohort_means() -> np.ndarray:
    """[M, BINS, 64, 64]: modality m, bin b is the constant 10 m + b (easy to recognise)."""
    values = 10 * np.arange(len(MODALITIES))[:, None] + np.arange(BINS)[None, :]
    return np.broadcast_to(values[:, :, None, None], (len(MODALITIES), BINS, 64, 64)).astype(np.float32).copy()


def segmenter_family(mode: str, upstream_dirs: dict[str, Path], tmp: Path, **extra):
    """A tiny segmenter family of ``mode`` whose frozen parts were written to ``tmp`` and read back."""
    upstream = {"fused_anatomy": upstream_dirs.get("disentangle"), "mmhvae_impute": upstream_dirs.get("mmhvae")}.get(mode)
    overrides = {"image_size": (64, 64), **mode_overrides(mode, (upstream, "test://" + mode) if upstream else None, BINS), **extra}
    plain = build_family("segmenter", "tiny", MODALITIES, overrides)
    tensors = frozen_tensors(plain.inference_module(), upstream, cohort_means())
    if tensors:
        overrides["frozen_parts"] = write_frozen_parts(str(tmp / f"{mode}.pt"), tensors)
    torch.manual_seed(0)
    return build_family("segmenter", "tiny", MODALITIES, overrides)


def upstream_module(directory: Path):
    return read_model_dir(directory)[1]

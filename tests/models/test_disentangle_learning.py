"""Learning speed of the ``cpu`` preset on a fixed batch of real phantom slices: a step budget
(not a timed assertion) within which self-reconstruction must become good. Guards against
regressions such as the dead ReLU decoder head that froze the output at a constant image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from raysys.models import build_family
from raysys.models.family import StepContext

STEPS = 150  # step budget; ~0.3 s per step on one CPU core
MIN_SSIM_SELF = 0.9


@pytest.fixture(scope="module")
def fixed_batch(tiny_store) -> dict[str, torch.Tensor]:
    """Slices a quarter into each of 4 distinct phantom subjects' volumes (tiny store, 64x64)."""
    from raysys.data import SliceDataset

    dataset = SliceDataset(tiny_store, split="all", context=3)
    indices = []
    for subject in np.unique(dataset.slice_subjects)[:4]:
        own = np.flatnonzero(dataset.slice_subjects == subject)
        indices.append(int(own[own.size // 2]))
    return default_collate([dataset[i] for i in indices])


@pytest.mark.slow
def test_cpu_preset_learns_self_reconstruction_within_step_budget(fixed_batch):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    family = build_family("disentangle", "cpu")
    family.configure_optimizers(total_epochs=1, steps_per_epoch=STEPS)
    for step in range(STEPS):
        ctx = StepContext(epoch=0, total_epochs=1, global_step=step, device=torch.device("cpu"), grad_clip=1.0)
        family.train_step(fixed_batch, ctx)
    metrics = family.eval_step(fixed_batch)
    ssim_self = float(metrics["ssim_self"].nanmean())
    ssim_cross = float(metrics["ssim_cross"].nanmean())
    assert ssim_self >= MIN_SSIM_SELF, f"self-recon SSIM {ssim_self:.3f} after {STEPS} steps (cross {ssim_cross:.3f})"

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

STEPS = 300  # step budget (~0.15-0.3 s per step on one CPU core); SSIM_self ~0.92 there, ~0.86 at 150
MIN_SSIM_SELF = 0.9
KEEP = (0, 2)  # modalities left available (t1, t2): 4 ordered pairs per sample keep the steps cheap


@pytest.fixture(scope="module")
def fixed_batch(tiny_store) -> dict[str, torch.Tensor]:
    """The middle slice of 2 distinct phantom subjects (tiny store, 64x64), 2 modalities available."""
    from raysys.data import SliceDataset

    dataset = SliceDataset(tiny_store, split="all", context=build_family("disentangle", "cpu").config.context)
    indices = []
    for subject in np.unique(dataset.slice_subjects)[:2]:
        own = np.flatnonzero(dataset.slice_subjects == subject)
        indices.append(int(own[own.size // 2]))
    batch = default_collate([dataset[i] for i in indices])
    assert batch["available"][:, list(KEEP)].all(), "the phantom subjects must have the KEPT modalities"
    hidden = [i for i in range(batch["available"].shape[1]) if i not in KEEP]
    batch["available"] = batch["available"].clone()
    batch["available"][:, hidden] = False
    return batch


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

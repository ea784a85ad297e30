"""A short overfit on a tiny phantom batch (tiny_store, SliceDataset) lowers the loss clearly,
for the MoPoE baseline (L = 1) and a hierarchy (L = 4)."""

from __future__ import annotations

import pytest
import torch

from raysys.models import build_family
from raysys.models.family import StepContext

torch.set_num_threads(1)
STEPS = 20


@pytest.mark.slow
@pytest.mark.parametrize("levels", [1, 4])
def test_short_overfit_lowers_the_loss(phantom_batch, levels):
    batch, value_range = phantom_batch
    torch.manual_seed(0)
    overrides = {"levels": levels, "lambda_gan": 0.0, "data_range": value_range, "lr": 5e-3}
    fam = build_family("mmhvae", "tiny", overrides=overrides)
    fam.configure_optimizers(total_epochs=1, steps_per_epoch=STEPS)
    before = fam.eval_step(batch)["psnr_mean"].nanmean().item()
    losses = []
    for step in range(STEPS):
        ctx = StepContext(epoch=0, total_epochs=1, global_step=step, device=torch.device("cpu"))
        losses.append(fam.train_step(batch, ctx)["loss/total"])
    last = sum(losses[-3:]) / 3
    after = fam.eval_step(batch)["psnr_mean"].nanmean().item()
    print(f"L={levels}: loss {losses[0]:.4f} -> {last:.4f}, validation PSNR {before:.2f} -> {after:.2f} dB")
    assert last < 0.6 * losses[0], (losses[0], last)
    assert after > before + 3.0, (before, after)

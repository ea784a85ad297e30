"""A short overfit on a tiny phantom batch (tiny_store, SliceDataset) lowers the loss clearly."""

from __future__ import annotations

import pytest
import torch

from raysys.models import build_family
from raysys.models.family import StepContext

torch.set_num_threads(1)
STEPS = 40


@pytest.mark.slow
def test_short_overfit_lowers_the_loss(phantom_batch):
    batch, value_range = phantom_batch
    torch.manual_seed(0)
    # no dropout, no curriculum (every scenario from the start): the loss then measures the fit alone
    fam = build_family("mmgan", "tiny", overrides={"data_range": value_range, "lr": 2e-3, "dropout": 0.0, "curriculum": False})
    fam.configure_optimizers(total_epochs=1, steps_per_epoch=STEPS)
    fam.train(False)
    before = fam.eval_step(batch)["psnr_synthesis"].nanmean().item()
    fam.train(True)
    l1 = []
    for step in range(STEPS):
        ctx = StepContext(epoch=0, total_epochs=1, global_step=step, device=torch.device("cpu"))
        l1.append(fam.train_step(batch, ctx)["loss/l1"])
    fam.train(False)
    after = fam.eval_step(batch)["psnr_synthesis"].nanmean().item()
    first, last = sum(l1[:3]) / 3, sum(l1[-3:]) / 3
    print(f"L1 {first:.4f} -> {last:.4f}, synthesis PSNR {before:.2f} -> {after:.2f} dB")
    assert last < 0.5 * first, (first, last)
    assert after > before + 3.0, (before, after)

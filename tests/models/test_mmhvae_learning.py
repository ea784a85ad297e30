"""The cpu preset learns: training on one fixed batch of real phantom slices (tiny_store) reaches a
self-reconstruction SSIM of 0.9 within a fixed step budget (a step budget, not a timed assertion)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import default_collate

from raysys.data import SliceDataset
from raysys.models import build_family
from raysys.models.family import StepContext
from raysys.models.metrics import masked_ssim

torch.set_num_threads(1)
STEPS = 150
BATCH = 4


@pytest.fixture(scope="module")
def full_batch(tiny_store):
    """Four slices with all modalities observed and the largest brain masks, distinct subjects."""
    dataset = SliceDataset(tiny_store, split="train")
    candidates = [i for i in range(len(dataset)) if bool(torch.as_tensor(dataset[i]["available"]).all())]
    areas = sorted(((int(dataset[i]["mask"].sum()), i) for i in candidates), reverse=True)
    chosen, subjects = [], set()
    for _, index in areas:
        subject = int(dataset[index]["subject"])
        if subject not in subjects:
            chosen.append(index)
            subjects.add(subject)
        if len(chosen) == BATCH:
            break
    assert len(chosen) == BATCH, "the tiny store needs 4 subjects with every modality"
    return default_collate([dataset[i] for i in chosen]), dataset.value_range


def self_reconstruction_ssim(family, batch, value_range) -> float:
    """Mean SSIM of every modality synthesised from all four (harmonisation of the full set)."""
    model = family.inference_module()
    images = batch["images"]
    if images.dim() == 5:
        images = images[:, :, images.shape[2] // 2]
    mask = batch["mask"].bool()
    out = model.synthesise(images, batch["available"].bool(), mask=mask)
    m = images.shape[1]
    ssim = masked_ssim(out.flatten(0, 1), images.flatten(0, 1), mask.repeat_interleave(m, 0), value_range)
    return float(ssim.mean())


@pytest.mark.slow
def test_cpu_preset_reconstructs_a_fixed_batch(full_batch):
    batch, value_range = full_batch
    torch.manual_seed(0)
    family = build_family("mmhvae", "cpu", overrides={"data_range": tuple(value_range)})
    family.configure_optimizers(total_epochs=1, steps_per_epoch=STEPS)
    family.train(False)
    before = self_reconstruction_ssim(family, batch, value_range)
    family.train(True)
    for step in range(STEPS):
        family.train_step(batch, StepContext(epoch=0, total_epochs=1, global_step=step, device=torch.device("cpu")))
    family.train(False)
    after = self_reconstruction_ssim(family, batch, value_range)
    print(f"self-reconstruction SSIM {before:.3f} -> {after:.3f} after {STEPS} steps")
    assert after >= 0.9, (before, after)

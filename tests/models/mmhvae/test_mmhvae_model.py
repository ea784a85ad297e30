"""MMHVAE generator (tiny preset): level plan, every subset x every L, temperature, fusion modes."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from raysys.config import ConfigError
from raysys.models import make_config
from raysys.models.mmhvae import MMHVAE, MMHVAEConfig, latent_groups
from raysys.models.mmhvae.subsets import all_subsets

torch.set_num_threads(1)
TINY = MMHVAEConfig.preset("tiny")
M = 4


def phantom(batch: int, size: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Disc-shaped 'brains' with modality-specific contrast: images [B, M, H, W] in [0, 1], mask."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    radius = 0.6 + 0.2 * torch.rand(batch, 1, 1, generator=gen)
    mask = (xx**2 + yy**2)[None] < radius**2
    blob = torch.exp(-((xx[None] - 0.2) ** 2 + (yy[None] + 0.1) ** 2) / 0.05)
    contrast = torch.tensor([0.3, 0.5, 0.7, 0.9])[None, :, None, None]
    images = (contrast * mask[:, None] + 0.1 * blob[:, None] * torch.arange(1, M + 1)[None, :, None, None])
    return images.clamp(0, 1) * mask[:, None], mask


def test_level_plan_follows_the_paper_ablation():
    assert latent_groups(1, 7) == (7,)
    assert latent_groups(2, 7) == (1, 7)
    assert latent_groups(3, 7) == (1, 4, 7)
    assert latent_groups(5, 7) == (1, 3, 4, 5, 7)
    assert latent_groups(7, 7) == (1, 2, 3, 4, 5, 6, 7)
    assert latent_groups(4, 7) == (1, 3, 5, 7)
    for levels in range(2, 7):
        groups = latent_groups(levels, 6)
        assert groups[0] == 1 and groups[-1] == 6 and len(set(groups)) == levels
    with pytest.raises(ValueError, match="levels must be in 1..6"):
        latent_groups(7, 6)


def test_config_checks_name_the_field_and_round_trip_from_strings():
    with pytest.raises(ValueError, match="levels"):
        dataclasses.replace(TINY, levels=9)
    with pytest.raises(ValueError, match="disc_layers"):
        dataclasses.replace(TINY, disc_layers=6)
    with pytest.raises(ValueError, match="gan_start_fraction"):
        dataclasses.replace(TINY, gan_start_fraction=1.5)
    with pytest.raises(ValueError, match="image_size"):
        dataclasses.replace(TINY, image_size=60)
    with pytest.raises(ValueError, match="image_size 32 is too small"):
        dataclasses.replace(TINY, image_size=32)  # coarsest map 1x1: InstanceNorm would fail in forward
    with pytest.raises(ValueError, match="unknown MMHVAE preset"):
        MMHVAEConfig.preset("huge")
    config = make_config("mmhvae", "tiny", {"levels": "3", "fusion": "average", "gan_start_epoch": "5", "data_range": "(-5, 5)"})
    assert (config.levels, config.fusion, config.gan_start_epoch, config.data_range) == (3, "average", 5, (-5.0, 5.0))
    with pytest.raises(ConfigError, match="fusion"):
        make_config("mmhvae", "tiny", {"fusion": "max"})
    with pytest.raises(ConfigError, match="unknown config key"):
        make_config("mmhvae", "tiny", {"lambda_kll": 1})


@pytest.mark.parametrize("levels", range(1, TINY.max_levels + 1))
def test_forward_for_every_input_subset_and_every_level(levels):
    torch.manual_seed(levels)
    model = MMHVAE(dataclasses.replace(TINY, levels=levels), M)
    subsets = all_subsets(M)  # 15 subsets: one per sample
    images, mask = phantom(len(subsets))
    out = model(images, subsets[None], mask)
    assert out.recon.shape == (1, len(subsets), M, 64, 64)
    assert out.kl.shape == (1, len(subsets), levels) and out.groups == latent_groups(levels, TINY.max_levels)
    assert torch.isfinite(out.recon).all() and (out.kl >= 0).all()
    assert (out.recon.abs() <= 1).all()
    assert (out.recon[0].transpose(0, 1)[:, ~mask] == -1).all()  # background masked
    synthesised = model.synthesise(images, subsets, temperature=0.5, mask=mask)
    assert synthesised.shape == (len(subsets), M, 64, 64)
    assert torch.isfinite(synthesised).all() and synthesised.min() >= 0 and synthesised.max() <= 1


def test_temperature_zero_gives_the_posterior_mean():
    torch.manual_seed(0)
    model = MMHVAE(TINY, M).eval()
    images, mask = phantom(3)
    available = torch.tensor([[1, 0, 1, 0], [1, 1, 1, 1], [0, 0, 0, 1]], dtype=torch.bool)
    first = model.synthesise(images, available, temperature=0.0, mask=mask)
    second = model.synthesise(images, available, temperature=0.0, mask=mask)
    assert torch.equal(first, second)
    warm = [model.synthesise(images, available, temperature=1.0, mask=mask) for _ in range(2)]
    assert not torch.equal(warm[0], warm[1])
    x = model.to_model_space(images)
    with torch.no_grad():
        _, result = model.decode(model.evidence(model.encode(x), available), mask, temperature=0.0)
    for group, z in result.latents.items():
        assert torch.equal(z, result.posteriors[group][0])


@pytest.mark.parametrize("fusion", ["poe", "average", "concat_zeros"])
def test_missing_modalities_cannot_influence_the_output(fusion):
    torch.manual_seed(0)
    model = MMHVAE(dataclasses.replace(TINY, fusion=fusion), M)
    images, mask = phantom(2)
    available = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 0]], dtype=torch.bool)
    garbage = torch.where(available[:, :, None, None], images, torch.rand_like(images) * 50)
    clean = model.synthesise(images, available, temperature=0.0, mask=mask)
    noisy = model.synthesise(garbage, available, temperature=0.0, mask=mask)
    torch.testing.assert_close(clean, noisy)


def test_prior_samples_and_shape_errors():
    model = MMHVAE(TINY, M)
    assert model.sample(2, temperature=1.0).shape == (2, M, 64, 64)
    with pytest.raises(ValueError, match="image_size"):
        model.synthesise(torch.zeros(1, M, 32, 32), torch.ones(1, M, dtype=torch.bool))
    with pytest.raises(ValueError, match="available"):
        model.synthesise(torch.zeros(1, M, 64, 64), torch.zeros(1, M, dtype=torch.bool))


def test_posterior_head_split_first_conv_equals_the_concatenated_input():
    """PosteriorHeadCell.forward_split (the hot path) = forward on [feat, skip_j] per expert and draw."""
    from raysys.models.mmhvae.blocks import PosteriorHeadCell

    torch.manual_seed(0)
    cell = PosteriorHeadCell(16, 8, 8, weight_norm=True)
    draws, batch, experts = 2, 3, 4
    feat = torch.randn(draws * batch, 8, 16, 16)
    skip = torch.randn(batch, experts, 8, 16, 16)
    joint = torch.cat([feat.unsqueeze(1).expand(-1, experts, -1, -1, -1), skip.repeat(draws, 1, 1, 1, 1)], dim=2)
    expected = cell(joint.flatten(0, 1)).view(draws * batch, experts, 8, 16, 16)
    torch.testing.assert_close(cell.forward_split(feat, skip, draws), expected, rtol=1e-5, atol=1e-5)


def test_cpu_preset_and_budget():
    cpu = MMHVAEConfig.preset("cpu")
    assert cpu.image_size == 64 and cpu.head_input == "z1_state" and cpu.subsets_per_step == 1
    budget = MMHVAEConfig.budget("cpu")
    assert set(budget) == {"epochs", "max_steps_per_epoch", "batch_size", "max_val_steps"}
    assert all(isinstance(v, int) and v > 0 for v in budget.values())
    assert MMHVAEConfig.budget("tiny") == {} and MMHVAEConfig.budget("paper") == {}
    with pytest.raises(ValueError, match="preset"):
        MMHVAEConfig.budget("huge")
    out = MMHVAE(cpu, 4)(torch.zeros(2, 4, 64, 64), torch.ones(1, 2, 4, dtype=torch.bool), torch.ones(2, 64, 64, dtype=torch.bool))
    assert out.recon.shape == (1, 2, 4, 64, 64) and torch.isfinite(out.recon).all()

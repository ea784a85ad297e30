"""Shapes for M = 2 and 4 with missing modalities, CondConv vs plain conv, config checks, presets."""

from __future__ import annotations

import time

import pytest
import torch

from raysys.models import build_family, build_model, make_config
from raysys.models.disentangle import DisentangleConfig, DisentangleFamily
from raysys.models.disentangle.condconv import CondConv2d, apply_by_route

torch.set_num_threads(1)


@pytest.mark.parametrize("modalities", [("t1", "t2"), ("t1", "t1gd", "t2", "flair")])
@pytest.mark.parametrize("encoder", ["conv", "condconv"])
def test_forward_shapes_with_missing_modalities(modalities, encoder):
    torch.manual_seed(0)
    config = make_config("disentangle", "tiny", {"encoder": encoder})
    family = DisentangleFamily(config, modalities)
    model = family.modules["model"]
    b, m, k, (h, w) = 3, len(modalities), config.context, config.image_size
    images = torch.randn(b, m, k, h, w)
    available = torch.ones(b, m, dtype=torch.bool)
    available[0, 1] = False
    available[2, 0] = False
    out = model(images, available)
    c, dz = config.anatomy_channels, config.z_dim
    assert out.s.shape == (b, m, c, h, w)
    assert out.z.shape == (b, m, dz)
    assert out.recon.shape == (b, m, m, k, h, w)
    assert out.z_reencoded.shape == (b, m, m, dz)
    assert out.pair_valid.shape == (b, m, m)
    n_available = int(available.sum())
    assert out.anatomy_rows.shape == (n_available, c, h, w) and out.row_index.shape == (n_available, 2)
    # s is a softmax over C where available and exactly zero where not.
    torch.testing.assert_close(out.s[available].sum(dim=1), torch.ones(n_available, h, w))
    assert torch.all(out.s[~available] == 0) and torch.all(out.z[~available] == 0)
    assert torch.all(out.recon[~out.pair_valid] == 0)
    assert torch.isfinite(out.recon).all()
    # Missing modalities' image content does not matter (only available rows are encoded).
    model.eval()
    corrupted = images.clone()
    corrupted[~available] = 1e3
    torch.testing.assert_close(model(corrupted, available).recon, model(images, available).recon)
    # Inference helpers.
    fused = model.fused_anatomy(images, available)
    assert fused.shape == (b, 3 * c, h, w)
    both = available[:, 0] & available[:, m - 1]
    synth = model.cross_synthesis(images[both], available[both], modalities[0], modalities[-1])
    assert synth.shape == (int(both.sum()), k, h, w)
    with pytest.raises(ValueError, match="must be available"):
        model.cross_synthesis(images, available, 0, 1)


def test_condconv_with_one_expert_equals_plain_conv():
    torch.manual_seed(0)
    cond = CondConv2d(3, 5, 3, n_routes=2, n_experts=1, stride=2, padding=1)
    x = torch.randn(4, 3, 8, 8)
    route = torch.tensor([0, 1, 1, 0])
    with torch.no_grad():
        cond.routing_logits[1] = 2.0  # different mixing weight per route
        beta = torch.sigmoid(cond.routing_logits)
    plain = torch.nn.Conv2d(3, 5, 3, stride=2, padding=1)
    got = cond(x, route)
    for r in (0, 1):
        with torch.no_grad():
            plain.weight.copy_(beta[r, 0] * cond.experts[0])
            plain.bias.copy_(cond.bias)
        rows = route == r
        torch.testing.assert_close(got[rows], plain(x[rows]))
    # Mixed kernel with several experts = sum_k beta_k W_k.
    cond3 = CondConv2d(2, 2, 1, n_routes=1, n_experts=3)
    want = (torch.sigmoid(cond3.routing_logits[0])[:, None, None, None, None] * cond3.experts).sum(0)
    torch.testing.assert_close(cond3.kernels()[0], want)


def test_apply_by_route_restores_row_order():
    route = torch.tensor([2, 0, 2, 1, 0])
    x = torch.arange(5.0)
    out = apply_by_route(route, lambda r, rows: x[rows] * 10 + r)
    torch.testing.assert_close(out, x * 10 + route.float())


def test_config_checks_name_the_argument():
    with pytest.raises(ValueError, match="image_size"):
        DisentangleConfig(image_size=(100, 160))
    with pytest.raises(ValueError, match="context"):
        DisentangleConfig(context=2)
    with pytest.raises(ValueError, match="regulariser"):
        DisentangleConfig(regulariser="vae")
    with pytest.raises(ValueError, match="sim_pool"):
        DisentangleConfig(image_size=(64, 64), unet_widths=(8, 8), modality_widths=(8,), decoder_widths=(8,), sim_pool=24)
    with pytest.raises(ValueError, match="preset"):
        DisentangleConfig.preset("huge")
    with pytest.raises(ValueError, match="modalities"):
        build_family("disentangle", "tiny", modalities=("t1",))
    model = build_family("disentangle", "tiny").modules["model"]
    with pytest.raises(ValueError, match="images"):
        model(torch.zeros(1, 4, 3, 32, 32), torch.ones(1, 4, dtype=torch.bool))


def test_family_modules_per_regulariser():
    assert set(build_family("disentangle", "tiny", overrides={"regulariser": "adv"}).modules) == {"model", "discriminator"}
    assert set(build_family("disentangle", "tiny", overrides={"regulariser": "sim"}).modules) == {"model"}
    assert set(build_family("disentangle", "tiny", overrides={"regulariser": "na"}).modules) == {"model"}


def test_paper_preset_builds_and_runs_one_forward_at_192x160():
    torch.manual_seed(0)
    model = build_model("disentangle", preset="paper")
    params = sum(p.numel() for p in model.parameters())
    assert 5e6 < params < 3e7
    images = torch.randn(2, 4, 3, 192, 160)
    available = torch.tensor([[True, True, False, True], [True, True, True, True]])
    start = time.perf_counter()
    with torch.no_grad():
        out = model(images, available)
    assert out.recon.shape == (2, 4, 4, 3, 192, 160) and out.s.shape == (2, 4, 4, 192, 160)
    assert torch.isfinite(out.recon).all()
    print(f"paper forward: {time.perf_counter() - start:.1f} s, {params} params")


def test_config_round_trips_through_flat_dicts_and_string_overrides():
    from raysys.config import from_flat, to_flat

    for preset in ("tiny", "paper", "cpu"):
        config = DisentangleConfig.preset(preset)
        assert from_flat(DisentangleConfig, to_flat(config)) == config
    config = make_config("disentangle", "tiny", {"encoder": "conv", "regulariser": "adv", "betas": "(0.5, 0.999)",
                                                 "lambda_s": "5", "n_experts": "2", "data_range": "(0.0, 1.0)"})
    assert (config.encoder, config.regulariser, config.betas) == ("conv", "adv", (0.5, 0.999))
    assert config.lambda_s == 5.0 and config.n_experts == 2 and config.data_range == (0.0, 1.0)
    with pytest.raises(ValueError, match="encoder"):
        make_config("disentangle", "tiny", {"encoder": "transformer"})


def test_cpu_preset_and_budgets():
    cpu, tiny = DisentangleConfig.preset("cpu"), DisentangleConfig.preset("tiny")
    assert cpu.image_size == tiny.image_size and cpu.unet_widths == tiny.unet_widths
    assert cpu.regulariser == "sim" and cpu.lr > tiny.lr
    assert cpu.encoder == "conv" and DisentangleConfig.preset("paper").encoder == "condconv"
    assert cpu.anatomy_channels == 8 and DisentangleConfig.preset("paper").anatomy_channels == 4
    budget = DisentangleConfig.budget("cpu")
    assert set(budget) == {"epochs", "max_steps_per_epoch", "batch_size", "max_val_steps"}
    assert all(isinstance(v, int) and v > 0 for v in budget.values())
    assert budget["batch_size"] <= 6  # per worker; batches hold distinct subjects (~12 in a train split)
    assert DisentangleConfig.budget("tiny") == {} and DisentangleConfig.budget("paper") == {}
    with pytest.raises(ValueError, match="preset"):
        DisentangleConfig.budget("huge")
    with pytest.raises(ValueError, match="sim_warmup_steps"):
        DisentangleConfig(sim_warmup_steps=-1)
    with pytest.raises(ValueError, match="recon_background_weight"):
        DisentangleConfig(recon_background_weight=-0.5)


def test_similarity_warmup_scales_the_similarity_terms():
    torch.manual_seed(0)
    family = build_family("disentangle", "tiny", overrides={"sim_warmup_steps": 100})
    b, m = 3, 4
    batch = {"images": torch.randn(b, m, 3, 64, 64), "available": torch.ones(b, m, dtype=torch.bool),
             "subject": torch.arange(b), "mask": torch.ones(b, 64, 64, dtype=torch.bool)}
    with torch.no_grad():
        out = family.modules["model"](batch["images"], batch["available"])
        full = family.losses(out, batch)
        quarter = family.losses(out, batch, global_step=25)
        start = family.losses(out, batch, global_step=0)
    assert full["sim_s"] > 0
    assert quarter["sim_s"].item() == pytest.approx(0.25 * full["sim_s"].item())
    assert quarter["sim_z"].item() == pytest.approx(0.25 * full["sim_z"].item())
    assert start["sim_s"].item() == 0.0 and start["self"].item() == full["self"].item()


@pytest.mark.parametrize("encoder", ["conv", "condconv"])
def test_full_resolution_skips_forward_shapes(encoder):
    torch.manual_seed(0)
    model = build_model("disentangle", preset="cpu", encoder=encoder)
    assert model.config.full_resolution_skips and model.config.context == 1
    images = torch.randn(2, 4, 1, 64, 64)
    available = torch.tensor([[True, False, True, True], [True, True, True, True]])
    out = model(images, available)
    assert out.recon.shape == (2, 4, 4, 1, 64, 64) and out.s.shape == (2, 4, model.config.anatomy_channels, 64, 64)
    # The full-resolution path reaches s: a one-pixel change of the input changes s at that pixel.
    with torch.no_grad():
        model.eval()
        s0 = model.anatomy(images, available)
        bumped = images.clone()
        bumped[:, :, :, 31, 17] += 3.0
        s1 = model.anatomy(bumped, available)
    assert (s1 - s0)[:, :, :, 31, 17].abs().max() > 1e-6

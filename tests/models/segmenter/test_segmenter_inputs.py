"""The family on each input mode, with tiny REAL upstream models read through frozen-parts files."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from segmenter_helpers import BINS, MODALITIES, cohort_means, segmenter_family, upstream_module

from raysys.models.family import StepContext

torch.set_num_threads(1)
MODES = ("standard_zero", "standard_avg", "mmhvae_impute", "fused_anatomy")


def batch_for(family, b: int = 3) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    available = torch.tensor([[True, True, True, True], [True, False, True, True], [False, False, True, False]][:b])
    k = family.context_slices
    images = torch.randn(b, len(MODALITIES), k, 64, 64, generator=gen) * available[:, :, None, None, None]
    label = torch.zeros(b, 64, 64, dtype=torch.long)
    label[:, 20:30, 20:30] = 2
    label[:, 22:26, 22:26] = 1
    label[0, 40:44, 40:44] = 4
    return {"images": images, "available": available, "label": label, "position": torch.tensor([0.05, 0.5, 0.95][:b]),
            "mask": torch.ones(b, 64, 64, dtype=torch.bool), "subject": torch.arange(b)}


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_trains_and_scores(mode, upstream_dirs, tmp_path):
    family = segmenter_family(mode, upstream_dirs, tmp_path)
    assert family.config.frozen_parts == ""  # the tensors now live in the family's own state
    model = family.inference_module()
    batch = batch_for(family)
    assert model(batch["images"], batch["available"], batch["position"]).shape == (3, 4, 64, 64)
    family.configure_optimizers(1, 1)
    frozen_before = {k: v.clone() for k, v in model.frozen_state_dict().items()}
    network_before = [p.detach().clone() for p in model.network.parameters()]
    logs = family.train_step(batch, StepContext(epoch=0, total_epochs=1, global_step=0, device=torch.device("cpu")))
    assert torch.isfinite(torch.tensor(logs["loss/total"]))
    assert any(not torch.equal(a, b) for a, b in zip(network_before, model.network.parameters()))  # the network learns
    assert all(torch.equal(frozen_before[k], v) for k, v in model.frozen_state_dict().items())  # the frozen parts do not
    metrics = family.eval_step(batch)
    assert set(metrics) == set(family.metric_names) and all(v.shape == (3,) for v in metrics.values())
    assert family.run_tags() == {"input_mode": mode, "network": "attention_unet"}


def test_frozen_upstream_weights_are_the_saved_models(upstream_dirs, tmp_path):
    for mode, family_name in (("fused_anatomy", "disentangle"), ("mmhvae_impute", "mmhvae")):
        family = segmenter_family(mode, upstream_dirs, tmp_path)
        saved = upstream_module(upstream_dirs[family_name]).state_dict()
        got = family.inference_module().upstream.state_dict()
        assert set(saved) == set(got) and all(torch.equal(saved[k], got[k]) for k in saved)
        assert not any(p.requires_grad for p in family.inference_module().upstream.parameters())
        family.train(True)
        assert not family.inference_module().upstream.training  # BatchNorm statistics stay frozen


def test_fused_anatomy_sees_the_disentangle_fusion_of_the_available(upstream_dirs, tmp_path):
    family = segmenter_family("fused_anatomy", upstream_dirs, tmp_path)
    batch = batch_for(family)
    upstream = upstream_module(upstream_dirs["disentangle"])
    expected = upstream.fused_anatomy(batch["images"], batch["available"])
    got = family.inference_module().network_input(batch["images"], batch["available"])
    assert family.context_slices == upstream.config.context and got.shape == (3, 3 * upstream.config.anatomy_channels, 64, 64)
    assert torch.allclose(got, expected, atol=1e-6)


def test_mmhvae_impute_keeps_the_available_and_synthesises_the_missing(upstream_dirs, tmp_path):
    family = segmenter_family("mmhvae_impute", upstream_dirs, tmp_path)
    batch = batch_for(family)
    centre, available = batch["images"][:, :, 0], batch["available"]
    got = family.inference_module().network_input(batch["images"], available)
    upstream = upstream_module(upstream_dirs["mmhvae"])
    synthesised = upstream.synthesise(centre, available, temperature=0.0)
    keep = available[:, :, None, None].expand_as(centre)
    assert torch.equal(got[keep], centre[keep])
    assert torch.allclose(got[~keep], synthesised[~keep], atol=1e-5)
    assert got[~keep].abs().sum() > 0  # something was synthesised, not zero-filled


def test_standard_modes_fill_missing_with_zero_or_the_cohort_mean_at_the_position(upstream_dirs, tmp_path):
    zero = segmenter_family("standard_zero", upstream_dirs, tmp_path)
    avg = segmenter_family("standard_avg", upstream_dirs, tmp_path)
    batch = batch_for(zero)
    centre, available = batch["images"][:, :, 0], batch["available"]
    filled_zero = zero.inference_module().network_input(batch["images"], available)
    assert torch.equal(filled_zero, centre * available[:, :, None, None])
    filled_avg = avg.inference_module().network_input(batch["images"], available, batch["position"])
    means = torch.from_numpy(cohort_means())
    bins = (batch["position"] * BINS).long()  # 0.05 -> 0, 0.95 -> 4
    for b in range(3):
        for m in range(len(MODALITIES)):
            expected = centre[b, m] if available[b, m] else means[m, bins[b]]
            assert torch.equal(filled_avg[b, m], expected)
    assert filled_avg[1, 1, 0, 0].item() == 10 * 1 + 2  # t1gd missing at position 0.5: bin 2


def test_bad_configs_name_the_field(upstream_dirs, tmp_path):
    from raysys.models import make_config

    with pytest.raises(ValueError, match="image_size"):
        make_config("segmenter", "tiny", {"image_size": (62, 64)})
    with pytest.raises(ValueError, match="needs the description"):
        segmenter_family("fused_anatomy", {}, tmp_path)
    family = segmenter_family("standard_zero", upstream_dirs, tmp_path)
    with pytest.raises(ValueError, match="labels"):
        family.eval_step({k: v for k, v in batch_for(family).items() if k != "label"})
    with pytest.raises(ValueError, match="a 'mmhvae' model"):
        make_config("segmenter", "tiny", dataclasses.asdict(segmenter_family("mmhvae_impute", upstream_dirs, tmp_path).config)
                    | {"input_mode": "fused_anatomy", "frozen_parts": ""})

"""MM-GAN modules: shapes at any image size, config checks, the scenarios and the curriculum."""

from __future__ import annotations

import pytest
import torch

from raysys.models import make_config
from raysys.models.mmgan import MMGAN, MMGANConfig
from raysys.models.mmgan.discriminator import ConditionalPatchDiscriminator
from raysys.models.mmgan.scenarios import curriculum_stage, missing_scenarios, open_scenarios, sample_inputs

torch.set_num_threads(1)


@pytest.mark.parametrize(("preset", "size"), [("tiny", (64, 64)), ("tiny", (48, 80)), ("cpu", (64, 64)), ("cpu", (40, 56))])
def test_generator_maps_all_modalities_to_all_at_any_size(preset, size):
    torch.manual_seed(0)
    model = MMGAN(make_config("mmgan", preset), 4).eval()
    x = torch.rand(2, 4, *size) * 2 - 1
    y = model(x)
    assert y.shape == (2, 4, *size) and y.abs().max() < 1.0  # tanh range
    scores = ConditionalPatchDiscriminator(4, model.config.disc_channels)(x, y)
    assert scores.shape[:2] == (2, 4) and scores.shape[2] >= 1


def test_synthesise_returns_the_inputs_unchanged_and_fills_the_rest():
    torch.manual_seed(0)
    model = MMGAN(make_config("mmgan", "tiny", {"data_range": (-5.0, 5.0)}), 4).eval()
    images = torch.randn(3, 4, 3, 64, 64) * 2  # [B, M, K, H, W]: the centre slice is used
    available = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 1], [0, 0, 1, 0]], dtype=torch.bool)
    out = model.synthesise(images, available)
    centre = images[:, :, 1]
    assert out.shape == (3, 4, 64, 64)
    assert torch.equal(out[available], centre[available])
    assert not torch.allclose(out[~available], centre[~available])
    assert out[~available].min() >= -5.0 and out[~available].max() <= 5.0
    # the syntheses do not depend on what the unavailable channels hold (zero imputation)
    noisy = images.clone()
    noisy[~available] = 7.0
    assert torch.equal(model.synthesise(noisy, available)[~available], out[~available])


@pytest.mark.parametrize(("field", "value"), [("lambda_l1", 1.5), ("dropout", 1.0), ("channels", ()), ("curriculum_end", 0.0), ("beta1", 1.0)])
def test_bad_config_values_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        MMGANConfig(**{field: value})
    with pytest.raises(ValueError, match="unknown MMGAN preset"):
        MMGANConfig.preset("huge")


def test_scenarios_are_ordered_hardest_first_without_none_and_all_missing():
    scenarios = missing_scenarios(4)
    assert scenarios.shape == (14, 4)
    kept = scenarios.sum(1).tolist()
    assert kept == sorted(kept) and kept[:4] == [1] * 4 and kept[-4:] == [3] * 4
    assert len({tuple(s) for s in scenarios.tolist()}) == 14


def test_curriculum_reproduces_the_released_windows_over_60_epochs():
    stages = [curriculum_stage(epoch / 60, 4, 0.5) for epoch in range(60)]
    # released: epoch <= 10 -> scenarios [10, 14); <= 20 -> [7, 14); <= 30 -> [3, 14); then all 14
    assert stages[:11] == [0] * 11 and stages[11:21] == [1] * 10 and stages[21:31] == [2] * 10 and stages[31:] == [3] * 29
    assert [open_scenarios(4, s, 4) for s in range(4)] == [4, 7, 11, 14]
    assert open_scenarios(4, 0, 1) == 14  # one stage: no curriculum


def test_sampled_inputs_are_strict_subsets_of_what_each_sample_has():
    gen = torch.Generator().manual_seed(0)
    available = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0], [1, 1, 1, 0]], dtype=torch.bool)
    for n_open in (4, 7, 14):
        for _ in range(20):
            inputs = sample_inputs(available, n_open, gen)
            assert not (inputs & ~available).any()  # only modalities the sample has
            assert inputs.any(1).all()
            left = (available & ~inputs).sum(1)
            assert (left[[0, 1, 2, 4]] >= 1).all()  # something to synthesise whenever possible
            assert torch.equal(inputs[3], available[3])  # a single modality: kept, nothing to learn
    # stage 0 (one missing of four) does not fit a sample with two: it gets the easiest that fits
    assert (sample_inputs(available, 4, gen)[1].sum() == 1).item()

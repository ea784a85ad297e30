"""What each family declares for the loop: store range, context slices, run tags, synthesis outputs, figures."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from raysys.models import build_family, make_config
from raysys.models.family import first_available

torch.set_num_threads(1)
MODALITIES = ("t1", "t1gd", "t2", "flair")


def batch_of(context: int, size: int = 64, batch: int = 3) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    mask = ((xx**2 + yy**2) < 0.7).expand(batch, size, size).clone()
    available = torch.tensor([[True, True, True, True], [False, True, False, True], [False, False, True, False]][:batch])
    images = torch.rand(batch, 4, context, size, size, generator=gen) * mask[:, None, None] * available[:, :, None, None, None]
    return {"images": images, "available": available, "mask": mask, "subject": torch.arange(batch)}


def test_first_available_keeps_each_samples_first_input_only():
    available = torch.tensor([[False, True, True], [True, False, True], [False, False, True]])
    expected = torch.tensor([[False, True, False], [True, False, False], [False, False, True]])
    assert torch.equal(first_available(available), expected)


@pytest.mark.parametrize("name", ["disentangle", "mmhvae", "mmgan"])
def test_config_for_store_sets_the_metric_range(name):
    family_cls = type(build_family(name, "tiny", MODALITIES))
    config = family_cls.config_for_store(make_config(name, "tiny"), [-5, 5])
    assert config.data_range == (-5.0, 5.0)
    assert dataclasses.replace(config, data_range=make_config(name, "tiny").data_range) == make_config(name, "tiny")


@pytest.mark.parametrize(
    ("name", "overrides", "context", "tags"),
    [
        ("disentangle", {"context": 5, "regulariser": "adv", "encoder": "conv"}, 5, {"regulariser": "adv", "encoder": "conv"}),
        ("mmhvae", {"levels": 3, "fusion": "average", "lambda_gan": 0.0}, 1, {"levels": "3", "fusion": "average", "lambda_gan": "0.0", "posterior": "mixture"}),
        ("mmgan", {"curriculum": False}, 1, {"implicit_conditioning": "True", "curriculum": "False", "lambda_l1": "0.9"}),
    ],
)
def test_context_slices_and_run_tags_come_from_the_config(name, overrides, context, tags):
    family = build_family(name, "tiny", MODALITIES, overrides)
    assert family.context_slices == context
    assert family.run_tags() == tags
    fields = {f.name for f in dataclasses.fields(family.config)}
    assert set(family.run_tags()) <= fields  # tagged as model.<field>: every tag names a real field


@pytest.mark.parametrize(
    ("name", "names"),
    [("disentangle", {"self", "from 1st"}), ("mmhvae", {"from all", "from 1st"}), ("mmgan", {"from all", "from 1st"})],
)
def test_synthesis_gives_every_modality_of_every_sample(name, names):
    family = build_family(name, "tiny", MODALITIES)
    family.train(False)
    batch = batch_of(family.context_slices, size=64)
    outputs = family.synthesis(batch)
    assert set(outputs) == names
    for images in outputs.values():
        assert images.shape == (3, 4, 64, 64) and torch.isfinite(images).all()


def test_disentangle_figures_are_the_two_tsne_plots():
    family = build_family("disentangle", "tiny", MODALITIES)
    family.train(False)
    figures = family.figures([batch_of(family.context_slices)], (-5.0, 5.0))
    assert set(figures) == {"tsne_z_by_modality", "tsne_fs_by_subject"}
    assert build_family("mmhvae", "tiny", MODALITIES).figures([batch_of(1)], (-5.0, 5.0)) == {}

"""The training posterior switch (mixture of subset PoEs vs one full-input PoE) and GAN off."""

from __future__ import annotations

import pytest
import torch

from raysys.models import build_family
from raysys.models.family import StepContext
from raysys.models.mmhvae.config import MHVAE_OVERRIDES, MMHVAEConfig
from raysys.models.mmhvae.subsets import training_subsets

torch.set_num_threads(1)
MODALITIES = ("t1", "t1gd", "t2", "flair")
AVAILABLE = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 1], [1, 1, 1, 1]], dtype=torch.bool)


def make_batch(available: torch.Tensor = AVAILABLE) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    b = available.shape[0]
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    mask = ((xx**2 + yy**2) < 0.7).expand(b, 64, 64).clone()
    images = (torch.rand(b, 4, 1, 64, 64, generator=gen) * 0.5 + 0.2) * mask[:, None, None] * available[:, :, None, None, None]
    return {"images": images, "available": available, "mask": mask}


def context(epoch: int = 9) -> StepContext:
    return StepContext(epoch=epoch, total_epochs=10, global_step=0, device=torch.device("cpu"))


def family(**overrides):
    fam = build_family("mmhvae", "tiny", MODALITIES, overrides)
    fam.configure_optimizers(total_epochs=10, steps_per_epoch=4)
    return fam


def recorded_subsets(fam) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    fam.modules["model"].register_forward_pre_hook(lambda module, args: seen.append(args[1].clone()))
    return seen


def test_training_subsets_full_is_the_observed_set_once_whatever_the_draws():
    subsets = training_subsets(AVAILABLE, "full", draws=3, scheme="paper")
    assert subsets.shape == (1, 4, 4) and torch.equal(subsets[0], AVAILABLE)
    mixture = training_subsets(AVAILABLE, "mixture", draws=3, scheme="paper", generator=torch.Generator().manual_seed(0))
    assert mixture.shape == (3, 4, 4)
    assert not (mixture & ~AVAILABLE[None]).any()
    with pytest.raises(ValueError, match="posterior"):
        training_subsets(AVAILABLE, "mean", draws=1)


@pytest.mark.parametrize(("posterior", "draws"), [("full", 1), ("mixture", 3)])
def test_train_step_encodes_one_full_subset_or_t_drawn_subsets(posterior, draws):
    torch.manual_seed(0)
    fam = family(posterior=posterior, subsets_per_step=3, lambda_gan=0.0)
    seen = recorded_subsets(fam)
    for _ in range(3):
        fam.train_step(make_batch(), context())
    assert len(seen) == 3 and all(s.shape == (draws, 4, 4) for s in seen)
    if posterior == "full":
        assert all(torch.equal(s[0], AVAILABLE) for s in seen)
    else:  # the mixture also draws proper subsets of the observed sets
        drawn = torch.cat(seen)
        assert not (drawn & ~AVAILABLE[None]).any() and (drawn != AVAILABLE[None]).any()


def test_mhvae_overrides_name_the_full_posterior_and_tag_it():
    fam = build_family("mmhvae", "tiny", ("t2", "flair"), dict(MHVAE_OVERRIDES))
    assert fam.config.posterior == "full" and fam.run_tags()["posterior"] == "full"
    assert MMHVAEConfig().posterior == "mixture"
    with pytest.raises(ValueError, match="posterior"):
        MMHVAEConfig(posterior="single")


def test_gan_off_builds_and_steps_no_discriminator():
    fam = family(lambda_gan=0.0, gan_start_fraction=0.0, disc_start_fraction=0.0)
    assert set(fam.modules) == {"model"} and set(fam.optimizers) == {"model"}
    logs = fam.train_step(make_batch(), context())
    assert logs["loss/disc"] == 0.0 and logs["loss/gan"] == 0.0 and logs["weight/lambda_gan"] == 0.0
    assert fam.memory.buffers is None  # no real image remembered
    on = family(gan_start_fraction=0.0, disc_start_fraction=0.0)
    assert "discriminators" in on.modules
    assert on.parameters_count > fam.parameters_count


def test_gan_off_family_loads_a_checkpoint_that_still_held_discriminators():
    with_gan = family()
    state = with_gan.state_dict()
    assert "discriminators" in state["modules"] and "discriminators" in state["optimizers"]
    without = family(lambda_gan=0.0)
    without.load_state_dict(state)
    for name, value in without.modules["model"].state_dict().items():
        assert torch.equal(value, with_gan.modules["model"].state_dict()[name])

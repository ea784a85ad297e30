"""The MMHVAE loss terms on hand-made tensors: the reconstruction term of eq. 9 (mean inside the
mask, in data-range units, summed over the observed modalities as in Alg. 1), the LSGAN terms of
eq. 15-16, and the Gaussian KL / log-density / sampling they build on (vs torch.distributions)."""

from __future__ import annotations

import math

import pytest
import torch

from raysys.models.mmhvae.distributions import gaussian_kl, gaussian_log_prob, reparameterised_sample
from raysys.models.mmhvae.losses import lsgan_discriminator_loss, lsgan_generator_loss, reconstruction_error


def hand_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """T=1 draw, B=1 sample, M=3 modalities of 2x2 pixels, the bottom row outside the mask;
    modalities 0 and 2 observed, 1 not."""
    target = torch.zeros(1, 3, 2, 2)
    recon = torch.zeros(1, 1, 3, 2, 2)
    recon[0, 0, 0, 0, 0] = 1.0     # modality 0: one masked pixel off by 1 (half the model-space range)
    recon[0, 0, 0, 1, :] = 2.0     # modality 0: off by 2 outside the mask (ignored)
    recon[0, 0, 1] = 2.0           # modality 1: off everywhere, but not observed (ignored)
    recon[0, 0, 2, 0, :] = 0.4     # modality 2: both masked pixels off by 0.4
    mask = torch.tensor([[[True, True], [False, False]]])
    available = torch.tensor([[True, False, True]])
    return recon, target, mask, available


def test_l1_reconstruction_is_the_masked_mean_in_range_units_summed_over_observed_modalities():
    recon, target, mask, available = hand_case()
    got = reconstruction_error(recon, target, mask, available, "l1")
    assert got.shape == (1, 1)
    # modality 0: |1| / 2 on one of two masked pixels -> 0.25; modality 2: 0.4 / 2 on both -> 0.2
    assert got.item() == pytest.approx(0.25 + 0.2)


def test_l2_reconstruction_squares_the_range_unit_difference():
    recon, target, mask, available = hand_case()
    got = reconstruction_error(recon, target, mask, available, "l2")
    # modality 0: (1 / 2)^2 on one of two pixels -> 0.125; modality 2: (0.4 / 2)^2 -> 0.04
    assert got.item() == pytest.approx(0.125 + 0.04)


def test_a_full_range_error_costs_one_per_observed_modality():
    # model space is [-1, 1]: predicting -1 for +1 is an error of the whole data range (1.0)
    target = torch.ones(2, 4, 3, 3)
    recon = -torch.ones(1, 2, 4, 3, 3)
    mask = torch.ones(2, 3, 3, dtype=torch.bool)
    available = torch.tensor([[True, True, True, True], [True, False, False, False]])
    for kind in ("l1", "l2"):
        got = reconstruction_error(recon, target, mask, available, kind)
        torch.testing.assert_close(got, torch.tensor([[4.0, 1.0]]))  # a sum, not a mean, over r


def test_draws_are_scored_separately_and_an_empty_mask_costs_nothing():
    target = torch.zeros(2, 1, 2, 2)
    recon = torch.zeros(3, 2, 1, 2, 2)
    recon[1] = 0.5                  # draw 1 off by 0.5 -> 0.25 in range units
    recon[2, 0] = 1.0               # draw 2 off only for sample 0
    mask = torch.ones(2, 2, 2, dtype=torch.bool)
    mask[1] = False                 # sample 1 has no pixel to score
    available = torch.ones(2, 1, dtype=torch.bool)
    got = reconstruction_error(recon, target, mask, available, "l1")
    torch.testing.assert_close(got, torch.tensor([[0.0, 0.0], [0.25, 0.0], [0.5, 0.0]]))


def test_reconstruction_gradient_reaches_only_scored_pixels():
    recon, target, mask, available = hand_case()
    recon.requires_grad_(True)
    reconstruction_error(recon, target, mask, available, "l1").sum().backward()
    grad = recon.grad[0, 0]
    assert (grad[1] == 0).all() and (grad[:, 1] == 0).all()  # unobserved modality, unmasked row
    # d/dx of |x / 2| / 2 pixels = 0.25 on every masked pixel with a non-zero error
    assert grad[0, 0, 0].item() == pytest.approx(0.25) and grad[2, 0].tolist() == pytest.approx([0.25, 0.25])


def test_lsgan_generator_loss_is_the_mean_squared_distance_to_real():
    scores = torch.tensor([[[[1.0, 0.0], [3.0, 1.0]]]])
    assert lsgan_generator_loss(scores).item() == pytest.approx((0 + 1 + 4 + 0) / 4)
    assert lsgan_generator_loss(torch.ones(2, 3, 4, 4)).item() == 0.0  # fakes scored real: no loss


def test_lsgan_discriminator_loss_on_given_scores():
    # B=2, M=2, 1x2 patches; sample 0 has no real example of modality 1
    real = torch.tensor([[[[1.0, 0.0]], [[50.0, -50.0]]],
                         [[[2.0, 1.0]], [[0.0, 0.0]]]])
    fake = torch.tensor([[[[0.0, 1.0]], [[2.0, 0.0]]],
                         [[[0.0, 0.0]], [[1.0, 1.0]]]])
    valid = torch.tensor([[True, False], [True, True]])
    # valid reals' (d - 1)^2: 0, 1 | 1, 0 | 1, 1 -> mean 4 / 6; every fake's d^2: 0, 1, 4, 0, 0, 0, 1, 1 -> 7 / 8
    got = lsgan_discriminator_loss(real, fake, valid)
    assert got.item() == pytest.approx(0.5 * (4 / 6 + 7 / 8))
    perfect = lsgan_discriminator_loss(torch.ones(2, 2, 1, 2), torch.zeros(2, 2, 1, 2), valid)
    assert perfect.item() == 0.0
    # no real example at all: only the fake half remains
    none_real = lsgan_discriminator_loss(real, fake, torch.zeros(2, 2, dtype=torch.bool))
    assert none_real.item() == pytest.approx(0.5 * 7 / 8)


def test_gaussian_kl_equals_torch_distributions_with_broadcasting():
    gen = torch.Generator().manual_seed(0)
    mu_q, logvar_q = torch.randn(3, 4, 5, 5, generator=gen), torch.randn(3, 4, 5, 5, generator=gen)
    mu_p, logvar_p = torch.randn(1, 4, 5, 5, generator=gen), torch.randn(1, 4, 1, 1, generator=gen)
    q = torch.distributions.Normal(mu_q, (0.5 * logvar_q).exp())
    p = torch.distributions.Normal(mu_p, (0.5 * logvar_p).exp())
    expected = torch.distributions.kl_divergence(q, p)
    got = gaussian_kl(mu_q, logvar_q, mu_p, logvar_p)
    assert got.shape == (3, 4, 5, 5)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # closed form by hand: KL[N(0, 1) || N(0, e^2)] = 0.5 * (2 + e^-2 - 1)
    value = gaussian_kl(torch.tensor(0.0), torch.tensor(0.0), torch.tensor(0.0), torch.tensor(2.0))
    assert value.item() == pytest.approx(0.5 * (2.0 + math.exp(-2.0) - 1.0))


def test_gaussian_log_prob_of_known_gaussians():
    assert gaussian_log_prob(torch.tensor(0.0), torch.tensor(0.0), torch.tensor(0.0)).item() == pytest.approx(
        -0.5 * math.log(2 * math.pi))
    # N(1, 4) at z = 3: -0.5 * (log 2 pi + log 4 + (2^2) / 4)
    value = gaussian_log_prob(torch.tensor(3.0), torch.tensor(1.0), torch.tensor(4.0).log())
    assert value.item() == pytest.approx(-0.5 * (math.log(2 * math.pi) + math.log(4.0) + 1.0))
    gen = torch.Generator().manual_seed(1)
    z, mu, logvar = (torch.randn(6, 7, generator=gen) for _ in range(3))
    expected = torch.distributions.Normal(mu, (0.5 * logvar).exp()).log_prob(z)
    torch.testing.assert_close(gaussian_log_prob(z, mu, logvar), expected, rtol=1e-5, atol=1e-5)


def test_reparameterised_sample_scales_the_noise_by_temperature_and_std():
    mu, logvar = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.0, 2.0, -1.0])
    assert reparameterised_sample(mu, logvar, temperature=0.0) is mu
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(3))
    got = reparameterised_sample(mu, logvar, temperature=0.5, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(got, mu + 0.5 * torch.exp(0.5 * logvar) * eps)

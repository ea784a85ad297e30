"""product_of_experts (eq. 13-14) and gaussian_kl: exact values, masking, Monte-Carlo agreement."""

from __future__ import annotations

import pytest
import torch

from raysys.models.mmhvae import gaussian_kl, product_of_experts


def test_one_expert_returns_itself():
    mu, logvar = torch.randn(1, 3, 5), torch.randn(1, 3, 5)
    fused_mu, fused_logvar = product_of_experts(mu, logvar, torch.ones(1, 3, dtype=torch.bool))
    torch.testing.assert_close(fused_mu, mu[0])
    torch.testing.assert_close(fused_logvar, logvar[0])


def test_two_equal_experts_halve_the_variance():
    mu, logvar = torch.randn(1, 2, 4), torch.randn(1, 2, 4)
    fused_mu, fused_logvar = product_of_experts(mu.repeat(2, 1, 1), logvar.repeat(2, 1, 1), torch.ones(2, 2, dtype=torch.bool))
    torch.testing.assert_close(fused_mu, mu[0])
    torch.testing.assert_close(fused_logvar.exp(), logvar[0].exp() / 2)


def test_agrees_with_direct_precision_weighting():
    torch.manual_seed(0)
    mu, logvar = torch.randn(4, 3, 2, 5, 5), torch.randn(4, 3, 2, 5, 5)
    available = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 1], [1, 0, 0]], dtype=torch.bool)
    fused_mu, fused_logvar = product_of_experts(mu, logvar, available)
    for b in range(3):
        use = available[:, b]
        precision = torch.exp(-logvar[use, b])
        expected_mu = (precision * mu[use, b]).sum(0) / precision.sum(0)
        torch.testing.assert_close(fused_mu[b], expected_mu)
        torch.testing.assert_close(fused_logvar[b], -torch.log(precision.sum(0)))


@pytest.mark.parametrize("poison", [float("nan"), float("inf"), float("-inf")])
def test_masked_experts_have_no_influence_even_nan_or_inf(poison):
    torch.manual_seed(1)
    mu = torch.randn(3, 2, 6, requires_grad=True)
    logvar = torch.randn(3, 2, 6, requires_grad=True)
    available = torch.tensor([[True, True], [False, True], [True, False]])
    poisoned_mu = torch.where(~available[:, :, None], torch.full_like(mu, poison), mu)
    poisoned_logvar = torch.where(~available[:, :, None], torch.full_like(logvar, poison), logvar)
    fused_mu, fused_logvar = product_of_experts(poisoned_mu, poisoned_logvar, available)
    clean_mu, clean_logvar = product_of_experts(mu.detach(), logvar.detach(), available)
    torch.testing.assert_close(fused_mu, clean_mu)
    torch.testing.assert_close(fused_logvar, clean_logvar)
    (fused_mu.sum() + fused_logvar.sum()).backward()
    assert torch.isfinite(mu.grad).all() and torch.isfinite(logvar.grad).all()
    assert (mu.grad[~available] == 0).all() and (logvar.grad[~available] == 0).all()
    assert (mu.grad[available] != 0).any()


def test_rejects_samples_without_any_expert_and_bad_shapes():
    mu = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match="at least one available expert"):
        product_of_experts(mu, mu, torch.tensor([[True, False, True], [True, False, False]]))
    with pytest.raises(ValueError, match="available must be bool"):
        product_of_experts(mu, mu, torch.ones(2, 3))
    with pytest.raises(ValueError, match="same shape"):
        product_of_experts(mu, torch.zeros(2, 3, 5), torch.ones(2, 3, dtype=torch.bool))


def test_kl_is_zero_for_equal_gaussians():
    mu, logvar = torch.randn(10), torch.randn(10)
    torch.testing.assert_close(gaussian_kl(mu, logvar, mu, logvar), torch.zeros(10))


def test_kl_known_value_and_monte_carlo_agreement():
    # KL[N(1, 0.5^2) || N(0, 1)] = 0.5 * (0.25 + 1 - 1 - log 0.25)
    value = gaussian_kl(torch.tensor(1.0), torch.tensor(0.25).log(), torch.tensor(0.0), torch.tensor(0.0))
    torch.testing.assert_close(value, torch.tensor(0.5 * (0.25 + 1.0 - 1.0 - torch.tensor(0.25).log().item())))
    gen = torch.Generator().manual_seed(0)
    mu_q, logvar_q, mu_p, logvar_p = torch.tensor([0.3, -1.0]), torch.tensor([-0.5, 0.4]), torch.tensor([1.0, 0.0]), torch.tensor([0.2, -0.3])
    q = torch.distributions.Normal(mu_q, (0.5 * logvar_q).exp())
    p = torch.distributions.Normal(mu_p, (0.5 * logvar_p).exp())
    z = mu_q + (0.5 * logvar_q).exp() * torch.randn(200_000, 2, generator=gen)
    monte_carlo = (q.log_prob(z) - p.log_prob(z)).mean(0)
    torch.testing.assert_close(gaussian_kl(mu_q, logvar_q, mu_p, logvar_p), monte_carlo, atol=0.02, rtol=0.02)

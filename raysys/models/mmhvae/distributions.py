"""Diagonal Gaussians parameterised by (mu, logvar): KL, log-density, reparameterised sampling.

All functions are elementwise; shapes broadcast ([B, C, H, W] or [B, D] in practice).
"""

from __future__ import annotations

import math

import torch

_LOG_2PI = math.log(2.0 * math.pi)


def gaussian_kl(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor) -> torch.Tensor:
    """Elementwise analytic KL[N(mu_q, exp(logvar_q)) || N(mu_p, exp(logvar_p))]."""
    return 0.5 * (logvar_p - logvar_q + (torch.exp(logvar_q) + (mu_q - mu_p) ** 2) * torch.exp(-logvar_p) - 1.0)


def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(z; mu, exp(logvar))."""
    return -0.5 * (_LOG_2PI + logvar + (z - mu) ** 2 * torch.exp(-logvar))


def reparameterised_sample(
    mu: torch.Tensor, logvar: torch.Tensor, temperature: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """z = mu + temperature * std * eps, eps ~ N(0, I); temperature 0 returns mu exactly.

    ``generator`` (optional, on mu's device) makes the noise reproducible, e.g. for validation.
    """
    if temperature == 0:
        return mu
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + temperature * torch.exp(0.5 * logvar) * eps

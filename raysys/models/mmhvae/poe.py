"""Product of Gaussian experts with per-sample availability (paper eq. 13-14)."""

from __future__ import annotations

import torch


def fuse_experts(mu: torch.Tensor, logvar: torch.Tensor, available: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``product_of_experts`` without the argument checks (no host sync; the model's hot path).

    Computed in at least float32 (half precision would overflow the precisions) as a softmax / logsumexp over the negative log-variances, which is the
    same precision weighting without overflow. Unavailable experts are replaced by harmless values
    with ``torch.where`` BEFORE any arithmetic, so neither their values (inf/nan included) nor
    their gradients can leak into the result.
    """
    shape = available.shape + (1,) * (mu.dim() - available.dim())
    keep = available.reshape(shape)
    dtype = torch.promote_types(mu.dtype, torch.float32)
    mu32, logvar32 = mu.to(dtype), logvar.to(dtype)
    neg_logvar = torch.where(keep, -logvar32, torch.full_like(logvar32, float("-inf")))
    safe_mu = torch.where(keep, mu32, torch.zeros_like(mu32))
    # eq. 14: D^-1 = sum_j D_j^-1 and mu = D * sum_j D_j^-1 mu_j
    fused_logvar = -torch.logsumexp(neg_logvar, dim=0)
    fused_mu = (torch.softmax(neg_logvar, dim=0) * safe_mu).sum(dim=0)
    return fused_mu, fused_logvar


def product_of_experts(mu: torch.Tensor, logvar: torch.Tensor, available: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fuse E Gaussian experts by precision weighting (paper eq. 14; the caller passes the prior
    as one expert, eq. 13).

    Args:
        mu, logvar: [E, B, ...] means and log-variances of the E experts.
        available: bool [E, B]; unavailable experts have no influence whatever their values.
    Returns:
        (mu, logvar) [B, ...] (at least float32): precision = sum of the available experts' exp(-logvar),
        mu = sum(precision_j * mu_j) / precision, logvar = -log(precision).
    Raises:
        ValueError: shapes disagree, or some sample has no available expert.
    """
    if mu.shape != logvar.shape:
        raise ValueError(f"mu {tuple(mu.shape)} and logvar {tuple(logvar.shape)} must have the same shape")
    if available.dtype != torch.bool or available.shape != mu.shape[:2]:
        raise ValueError(f"available must be bool [E, B] = {tuple(mu.shape[:2])}, got {available.dtype} {tuple(available.shape)}")
    if not bool(available.any(dim=0).all()):
        raise ValueError("available: every sample needs at least one available expert (pass the prior as one)")
    return fuse_experts(mu, logvar, available)

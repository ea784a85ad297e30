"""Loss terms of the MMHVAE objective (eq. 9, 16, 19) and the LSGAN discriminator loss (eq. 15)."""

from __future__ import annotations

from typing import Literal

import torch


def reconstruction_error(
    recon: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    available: torch.Tensor,
    kind: Literal["l1", "l2"] = "l1",
) -> torch.Tensor:
    """Input reconstruction + synthesis terms of eq. 9 for every observed modality.

    Args:
        recon: [T, B, M, H, W] model space; target: [B, M, H, W] model space; mask: bool [B, H, W]
        (pixels scored); available: bool [B, M] (the observed set r: only these are targets).
    Returns:
        [T, B]: per draw and sample, the SUM over observed modalities (Alg. 1) of the mean error
        inside the mask, in units of the data range (model-space difference / 2, as the released
        code). Summing keeps lambda_KL's weight independent of how many modalities are observed.
    """
    diff = (recon - target[None]) * 0.5
    error = diff.abs() if kind == "l1" else diff**2
    m = mask[None, :, None].to(error.dtype)
    per_image = (error * m).sum(dim=(-2, -1)) / m.sum(dim=(-2, -1)).clamp(min=1.0)  # [T, B, M]
    observed = available[None].to(error.dtype)
    return (per_image * observed).sum(dim=-1)  # Alg. 1 l. 12: sum over the observed modalities j in r


def lsgan_generator_loss(scores: torch.Tensor) -> torch.Tensor:
    """Generator side of eq. 16 in LSGAN form: mean (d(x_hat) - 1)^2 over all patch scores."""
    return ((scores - 1.0) ** 2).mean()


def lsgan_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor, real_valid: torch.Tensor) -> torch.Tensor:
    """Discriminator side of eq. 15 in LSGAN form, averaged over modalities.

    Args:
        real_scores, fake_scores: [B, M, h, w]; real_valid: bool [B, M] (a real example exists).
    Returns:
        0.5 * (mean over valid reals of (d - 1)^2 + mean over fakes of d^2), a scalar.
    """
    valid = real_valid[:, :, None, None].to(real_scores.dtype).expand_as(real_scores)
    real_term = (((real_scores - 1.0) ** 2) * valid).sum() / valid.sum().clamp(min=1.0)
    fake_term = (fake_scores**2).mean()
    return 0.5 * (real_term + fake_term)

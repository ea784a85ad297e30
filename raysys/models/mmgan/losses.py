"""The MM-GAN objective with implicit conditioning (Sec. III-C, III-D): L1 and LSGAN terms.

Every term takes ``targets`` bool [B, M]: the modalities synthesised for a sample that it really
has (missing from its inputs, present in its data). With implicit conditioning (IC) only these are
scored, and the discriminator sees the real inputs in place of the generator's output for them.
"""

from __future__ import annotations

import torch


def implicit_conditioning(fake: torch.Tensor, real: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """IC (Sec. III-D): the generator's output where ``targets``, the real images everywhere else.

    fake, real: [B, M, H, W]; targets: bool [B, M]. The real images of modalities a sample lacks
    (zeros, the same in the real pair) keep those channels out of the discriminator's decision.
    """
    return torch.where(targets[:, :, None, None], fake, real)


def l1_on_targets(fake: torch.Tensor, real: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """L_1 (eq. of Sec. III-C) averaged over the target images (whole image, model space); 0 without targets."""
    per_image = (fake - real).abs().mean(dim=(-2, -1))  # [B, M]
    weight = targets.to(per_image.dtype)
    return (per_image * weight).sum() / weight.sum().clamp(min=1.0)


def _masked_mean(values: torch.Tensor, select: torch.Tensor) -> torch.Tensor:
    """Mean of [B, M, h, w] ``values`` over the score maps selected by bool [B, M]."""
    weight = select[:, :, None, None].to(values.dtype).expand_as(values)
    return (values * weight).sum() / weight.sum().clamp(min=1.0)


def lsgan_generator_loss(fake_scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """L_adv for G (LSGAN): mean (d - 1)^2 over the score maps of the synthesised modalities."""
    return _masked_mean((fake_scores - 1.0) ** 2, targets)


def lsgan_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor, inputs: torch.Tensor,
                             targets: torch.Tensor) -> torch.Tensor:
    """L_adv for D (LSGAN): 0.5 (real term + fake term) over the modalities the sample has.

    Real pair: every present modality labelled 1. Fake pair: synthesised modalities labelled 0
    and, with IC, the real inputs put back labelled 1 (the released per-modality labels).
    Args: scores [B, M, h, w]; inputs, targets bool [B, M] (``inputs`` empty without IC).
    """
    present = inputs | targets
    real_term = _masked_mean((real_scores - 1.0) ** 2, present)
    label = inputs[:, :, None, None].to(fake_scores.dtype)
    fake_term = _masked_mean((fake_scores - label) ** 2, present)
    return 0.5 * (real_term + fake_term)

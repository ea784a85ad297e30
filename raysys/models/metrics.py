"""Brain-masked image-quality metrics with a FIXED data range (torchmetrics underneath).

Why fixed: per-image ranges (what both released codes did) make PSNR incomparable across
images and models. The range is the store's ``value_range`` (see README, store layout);
predictions and targets are clipped to it before scoring.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure


def masked_psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, data_range: tuple[float, float]) -> torch.Tensor:
    """PSNR per image over the voxels inside ``mask``.

    Args:
        pred, target: [B, H, W] images. mask: [B, H, W] bool. data_range: (low, high).
    Returns:
        [B] float tensor; NaN for an image whose mask is empty.
    """
    lo, hi = data_range
    pred = pred.float().clamp(lo, hi)
    target = target.float().clamp(lo, hi)
    out = torch.full((pred.shape[0],), float("nan"), device=pred.device)
    for b in range(pred.shape[0]):
        m = mask[b].bool()
        if m.any():
            out[b] = peak_signal_noise_ratio(pred[b][m], target[b][m], data_range=(lo, hi))
    return out


def masked_ssim(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, data_range: tuple[float, float]) -> torch.Tensor:
    """SSIM per image: the torchmetrics SSIM map (Gaussian 11x11) averaged inside ``mask``.

    Args:
        pred, target: [B, H, W] images. mask: [B, H, W] bool. data_range: (low, high).
    Returns:
        [B] float tensor; NaN for an image whose mask is empty.
    """
    lo, hi = data_range
    pred = pred.float().clamp(lo, hi).unsqueeze(1)
    target = target.float().clamp(lo, hi).unsqueeze(1)
    _, ssim_map = structural_similarity_index_measure(
        pred, target, data_range=(lo, hi), reduction="none", return_full_image=True
    )
    m = mask.float()
    inside = m.sum(dim=(1, 2))
    value = (ssim_map[:, 0] * m).sum(dim=(1, 2)) / inside.clamp(min=1)
    return torch.where(inside > 0, value, torch.full_like(value, float("nan")))

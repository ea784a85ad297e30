"""Fusion of the anatomies of the available modalities into one modality-invariant input."""

from __future__ import annotations

import torch


def fuse_anatomy(s: torch.Tensor, available: torch.Tensor) -> torch.Tensor:
    """Concat(Max, Mean, Min) over the AVAILABLE modalities (paper sec. 3.2), in that order.

    Unavailable modalities never influence the result, whatever their values (NaN/inf too).
    Args:
        s: [B, M, C, H, W] anatomies. available: [B, M] bool, at least one True per sample.
    Returns:
        [B, 3C, H, W].
    """
    if s.dim() != 5 or available.shape != s.shape[:2]:
        raise ValueError(f"fuse_anatomy: s {tuple(s.shape)} must be [B, M, C, H, W] and available "
                         f"{tuple(available.shape)} must be [B, M]")
    available = available.bool()
    if not bool(available.any(dim=1).all()):
        raise ValueError("fuse_anatomy: every sample needs at least one available modality "
                         "(available has an all-False row)")
    keep = available[:, :, None, None, None]
    fused_max = torch.where(keep, s, torch.finfo(s.dtype).min).amax(dim=1)
    fused_min = torch.where(keep, s, torch.finfo(s.dtype).max).amin(dim=1)
    count = available.sum(dim=1).to(s.dtype)[:, None, None, None]
    fused_mean = torch.where(keep, s, torch.zeros((), dtype=s.dtype, device=s.device)).sum(dim=1) / count
    return torch.cat([fused_max, fused_mean, fused_min], dim=1)

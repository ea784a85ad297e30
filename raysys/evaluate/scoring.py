"""Per-slice PSNR / SSIM with the project's brain-masked metrics and the store's fixed data range."""

from __future__ import annotations

import numpy as np
import torch

from raysys.models.metrics import masked_psnr, masked_ssim


def score_slices(pred: np.ndarray, target: np.ndarray, mask: np.ndarray,
                 value_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(psnr [B], ssim [B]) of predictions against targets inside the brain mask.

    Args:
        pred, target: [B, H, W] float. mask: [B, H, W] bool (non-empty per slice).
        value_range: the store's ``value_range``; images are clipped to it (``raysys.models.metrics``).
    """
    p = torch.as_tensor(np.ascontiguousarray(pred), dtype=torch.float32)
    t = torch.as_tensor(np.ascontiguousarray(target), dtype=torch.float32)
    m = torch.as_tensor(np.ascontiguousarray(mask), dtype=torch.bool)
    lo, hi = float(value_range[0]), float(value_range[1])
    return masked_psnr(p, t, m, (lo, hi)).numpy().astype(np.float64), masked_ssim(p, t, m, (lo, hi)).numpy().astype(np.float64)

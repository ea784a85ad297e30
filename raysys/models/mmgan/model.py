"""The MM-GAN inference module: zero imputation, the U-Net generator, implicit conditioning.

Spaces: callers pass images in DATA space (the store's values, ``config.data_range``); inside,
images live in MODEL space [-1, 1] (the tanh output's range), mapped linearly. A missing
modality is imputed with zeros in model space (the paper's default imputation; for a z-scored
store that is the data-space value 0).
"""

from __future__ import annotations

import torch
from torch import nn

from raysys.models.mmgan.config import MMGANConfig
from raysys.models.mmgan.losses import implicit_conditioning
from raysys.models.mmgan.unet import UNetGenerator, pad_to_multiple


class MMGAN(nn.Module):
    """Multi-input multi-output generator for ``n_modalities`` co-registered 2D images (any H x W)."""

    def __init__(self, config: MMGANConfig, n_modalities: int):
        super().__init__()
        if n_modalities < 2:
            raise ValueError(f"n_modalities must be >= 2 (MM-GAN synthesises some from the others), got {n_modalities}")
        self.config = config
        self.n_modalities = n_modalities
        self.generator = UNetGenerator(n_modalities, config.channels, config.dropout, config.dropout_from)

    # --- spaces -------------------------------------------------------------------------
    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        """Data space (``config.data_range``) -> [-1, 1], clipped."""
        lo, hi = self.config.data_range
        return (2.0 * (x - lo) / (hi - lo) - 1.0).clamp(-1.0, 1.0)

    def to_data_space(self, y: torch.Tensor) -> torch.Tensor:
        """[-1, 1] -> data space."""
        lo, hi = self.config.data_range
        return lo + (y + 1.0) * 0.5 * (hi - lo)

    @staticmethod
    def impute(x: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Model-space images [B, M, H, W] with every modality outside ``inputs`` (bool [B, M]) set to 0."""
        return torch.where(inputs[:, :, None, None], x, torch.zeros((), dtype=x.dtype, device=x.device))

    # --- forward ------------------------------------------------------------------------
    def forward(self, imputed: torch.Tensor) -> torch.Tensor:
        """The generator: imputed model-space images [B, M, H, W] -> all M modalities [B, M, H, W]
        (model space). Pads H, W to multiples of ``config.stride`` with the background, crops back."""
        if imputed.dim() != 4 or imputed.shape[1] != self.n_modalities:
            raise ValueError(f"images must be [B, {self.n_modalities}, H, W], got {tuple(imputed.shape)}")
        background = float(self.to_model_space(torch.tensor(self.config.background)))
        padded, (h, w) = pad_to_multiple(imputed, self.config.stride, background)
        return self.generator(padded)[..., :h, :w]

    @torch.no_grad()
    def synthesise(self, images: torch.Tensor, available: torch.Tensor) -> torch.Tensor:
        """All M modalities from the available ones; the available ones are returned unchanged (IC).

        Args:
            images: [B, M, H, W] or [B, M, K, H, W] (centre slice used), data space.
            available: bool [B, M], at least one per sample: the inputs.
        Returns:
            [B, M, H, W] data space: the inputs where ``available``, syntheses elsewhere.
        """
        if images.dim() == 5:
            images = images[:, :, images.shape[2] // 2]
        available = available.bool()
        if images.dim() != 4 or available.shape != images.shape[:2] or not bool(available.any(dim=1).all()):
            raise ValueError(f"images {tuple(images.shape)} must be [B, M, H, W] and available bool [B, M] with >= 1 per sample")
        images = images.float()
        fake = self.to_data_space(self(self.impute(self.to_model_space(images), available)))
        return implicit_conditioning(fake, images, ~available)

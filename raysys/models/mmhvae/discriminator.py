"""Per-modality PatchGAN discriminators d_psi_j (paper Sec. 3.5; the released code's design)."""

from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """PatchGAN: [B, 1, H, W] -> patch scores [B, 1, h, w].

    ``layers`` 4x4 stride-2 convs (widths ndf * min(2^i, 4), InstanceNorm after the first,
    LeakyReLU 0.2), one 4x4 stride-1 conv, and a 4x4 stride-1 conv to one channel; no spectral
    norm, no sigmoid (LSGAN).
    """

    def __init__(self, channels: int = 64, layers: int = 6):
        super().__init__()
        seq: list[nn.Module] = [nn.Conv2d(1, channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        width = channels
        for i in range(1, layers):
            out = channels * min(2**i, 4)
            seq += [nn.Conv2d(width, out, 4, stride=2, padding=1), nn.InstanceNorm2d(out), nn.LeakyReLU(0.2)]
            width = out
        out = channels * min(2**layers, 4)
        seq += [nn.Conv2d(width, out, 4, stride=1, padding=1), nn.InstanceNorm2d(out), nn.LeakyReLU(0.2)]
        seq += [nn.Conv2d(out, 1, 4, stride=1, padding=1)]
        self.body = nn.Sequential(*seq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class PatchDiscriminators(nn.Module):
    """One PatchGAN per modality, applied in ONE call (what a DDP wrapper needs).

    Forward: images [N, M, H, W] (model space) -> scores [N, M, h, w]; channel j is scored by
    modality j's discriminator.
    """

    def __init__(self, n_modalities: int, channels: int, layers: int):
        super().__init__()
        self.per_modality = nn.ModuleList(PatchDiscriminator(channels, layers) for _ in range(n_modalities))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != len(self.per_modality):
            raise ValueError(f"images must be [N, {len(self.per_modality)}, H, W], got {tuple(images.shape)}")
        return torch.cat([d(images[:, j : j + 1]) for j, d in enumerate(self.per_modality)], dim=1)

"""Per-modality image heads mu_theta_j(z_1) (paper eq. 6)."""

from __future__ import annotations

import torch
from torch import nn

from raysys.models.mmhvae.blocks import ResnetBlock


class ImageHead(nn.Module):
    """z_1 [B, C_z, H, W] -> image [B, 1, H, W]: (1x1 conv if widths differ), ResNet blocks,
    reflect-pad kxk conv-IN-LeakyReLU, kxk conv, then tanh (the released code's head, k = 7, output
    in [-1, 1]) or nothing (``activation="linear"``)."""

    def __init__(self, in_channels: int, channels: int, blocks: int, kernel: int = 7, activation: str = "tanh"):
        super().__init__()
        if activation not in ("tanh", "linear"):
            raise ValueError(f"activation must be 'tanh' or 'linear', got {activation!r}")
        pad = kernel // 2
        layers: list[nn.Module] = [] if in_channels == channels else [nn.Conv2d(in_channels, channels, 1)]
        layers += [ResnetBlock(channels) for _ in range(blocks)]
        layers += [
            nn.Conv2d(channels, channels, kernel, padding=pad, padding_mode="reflect"),
            nn.InstanceNorm2d(channels),
            nn.LeakyReLU(0.2),
            nn.Conv2d(channels, 1, kernel, padding=pad, padding_mode="reflect"),
        ]
        if activation == "tanh":
            layers.append(nn.Tanh())
        self.body = nn.Sequential(*layers)

    def forward(self, z1: torch.Tensor) -> torch.Tensor:
        return self.body(z1)

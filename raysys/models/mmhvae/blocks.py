"""Building cells of the MMHVAE networks (InstanceNorm everywhere, Swish = SiLU, no BatchNorm).

Shapes: every cell maps [B, C, H, W] -> [B, C', H', W'] as stated.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def soft_clamp(x: torch.Tensor, bound: float) -> torch.Tensor:
    """``bound * tanh(x / bound)``: a smooth clamp to (-bound, bound) for means and log-variances."""
    return torch.tanh(x / bound) * bound


def maybe_weight_norm(module: nn.Module, enabled: bool) -> nn.Module:
    """Weight normalisation on a latent head (the released code's choice), or the module as is."""
    return nn.utils.parametrizations.weight_norm(module, name="weight", dim=0) if enabled else module


class SqueezeExcitation(nn.Module):
    """Channel gating: [B, C, H, W] -> [B, C, H, W] scaled by sigmoid(MLP(mean over H, W))."""

    def __init__(self, channels: int):
        super().__init__()
        hidden = max(channels // 16, 4)
        self.gate = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x.mean(dim=(2, 3)))[:, :, None, None]


class EncoderCell(nn.Module):
    """Residual cell IN-SiLU-conv3x3, IN-SiLU-conv3x3, SE, + skip: [B, C, H, W] -> same."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.InstanceNorm2d(channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.InstanceNorm2d(channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            SqueezeExcitation(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class DecoderCell(nn.Module):
    """MobileNetV2-style residual cell: IN, expand x e (3x3 conv, as in the released code), IN-SiLU,
    depthwise 5x5, IN-SiLU, SE, project 1x1, + skip: [B, C, H, W] -> same."""

    def __init__(self, channels: int, expansion: int):
        super().__init__()
        hidden = channels * expansion
        self.body = nn.Sequential(
            nn.InstanceNorm2d(channels),
            nn.Conv2d(channels, hidden, 3, padding=1),
            nn.InstanceNorm2d(hidden),
            nn.SiLU(),
            nn.Conv2d(hidden, hidden, 5, padding=2, groups=hidden),
            nn.InstanceNorm2d(hidden),
            nn.SiLU(),
            SqueezeExcitation(hidden),
            nn.Conv2d(hidden, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UpsampleConv(nn.Module):
    """Bilinear x2 upsampling then conv3x3: [B, C_in, H, W] -> [B, C_out, 2H, 2W]."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))


class PosteriorHeadCell(nn.Module):
    """Residual-posterior head h(z_l | x_j, z_>l) (the released code's BlockQ):
    [B, C_in, H, W] -> [B, C_out, H, W] = (mu, log-variance) stacked on channels."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int, weight_norm: bool):
        super().__init__()
        self.body = nn.Sequential(
            nn.InstanceNorm2d(in_channels),
            nn.SiLU(),
            nn.Conv2d(in_channels, hidden, 3, padding=1),
            nn.InstanceNorm2d(hidden),
            nn.SiLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            SqueezeExcitation(hidden),
            maybe_weight_norm(nn.Conv2d(hidden, out_channels, 1, bias=False), weight_norm),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ResnetBlock(nn.Module):
    """Image-head block: reflect-pad conv3x3-IN-ReLU-conv3x3-IN + skip: [B, C, H, W] -> same."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels),
            nn.ReLU(),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)

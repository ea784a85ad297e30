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

    def forward_split(self, feat: torch.Tensor, skip: torch.Tensor, draws: int) -> torch.Tensor:
        """``forward(cat([feat, skip], dim=2))`` for every expert, without building the concatenation.

        feat [N, C_f, H, W] (one per sample and draw), skip [N / draws, E, C_s, H, W] (one per
        sample and expert; the draw-major rows of N repeat it ``draws`` times) -> [N, E, C_out, H, W].
        InstanceNorm (no affine) and SiLU act per channel and the first conv is linear, so the first
        conv splits into a feat term computed once per sample (not per expert) and a skip term
        computed once per expert (not per draw); the same numbers, a fraction of the work.
        """
        norm, act, conv, rest = self.body[0], self.body[1], self.body[2], self.body[3:]
        if not isinstance(norm, nn.InstanceNorm2d) or norm.affine or norm.track_running_stats:
            raise TypeError("forward_split needs a plain InstanceNorm2d first (no affine, no running stats)")
        c_f = feat.shape[1]
        n, (b, e) = feat.shape[0], skip.shape[:2]
        def normed(x: torch.Tensor) -> torch.Tensor:
            return act(F.instance_norm(x, eps=norm.eps))

        feat_term = F.conv2d(normed(feat), conv.weight[:, :c_f], conv.bias, padding=conv.padding)
        skip_term = F.conv2d(normed(skip.flatten(0, 1)), conv.weight[:, c_f:], None, padding=conv.padding)
        skip_term = skip_term.view(1, b, e, *skip_term.shape[1:]).expand(draws, -1, -1, -1, -1, -1)
        h = feat_term.unsqueeze(1) + skip_term.reshape(n, e, *skip_term.shape[3:])
        out = rest(h.flatten(0, 1))
        return out.view(n, e, *out.shape[1:])


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

"""Decoder D(s, z | target): SPADE blocks modulated by the anatomy s, z entering through a FC."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from raysys.models.disentangle.condconv import PerModality, RoutedSequential, make_conv


class SPADE(nn.Module):
    """InstanceNorm(affine=False)(h) * (1 + gamma(s)) + beta(s), s resized to h (Park et al.)."""

    def __init__(self, channels: int, seg_channels: int, hidden: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(seg_channels, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """h [N, Ch, h, w], s [N, C, H, W] -> [N, Ch, h, w]."""
        # Area resizing averages the soft anatomy over each coarse cell instead of sampling it.
        s = F.interpolate(s, size=h.shape[-2:], mode="area") if s.shape[-2:] != h.shape[-2:] else s
        features = self.shared(s)
        return self.norm(h) * (1 + self.gamma(features)) + self.beta(features)


class SPADEResBlock(nn.Module):
    """SPADE-ReLU-conv3x3-SPADE-ReLU-conv3x3 plus a (SPADE-conv1x1) shortcut when widths change.

    The released code had no nonlinearity in these blocks; we use ReLU as SPADE does.
    """

    def __init__(self, in_channels: int, out_channels: int, seg_channels: int, hidden: int):
        super().__init__()
        middle = min(in_channels, out_channels)
        self.norm1 = SPADE(in_channels, seg_channels, hidden)
        self.conv1 = nn.Conv2d(in_channels, middle, 3, padding=1)
        self.norm2 = SPADE(middle, seg_channels, hidden)
        self.conv2 = nn.Conv2d(middle, out_channels, 3, padding=1)
        learned_shortcut = in_channels != out_channels
        self.shortcut_norm = SPADE(in_channels, seg_channels, hidden) if learned_shortcut else None
        self.shortcut_conv = nn.Conv2d(in_channels, out_channels, 1, bias=False) if learned_shortcut else None

    def forward(self, h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        shortcut = h if self.shortcut_conv is None else self.shortcut_conv(self.shortcut_norm(h, s))
        dh = self.conv1(F.relu(self.norm1(h, s)))
        dh = self.conv2(F.relu(self.norm2(dh, s)))
        return shortcut + dh


class SPADEDecoder(nn.Module):
    """D(s, z | target) -> the K context slices of the TARGET modality.

    z -> FC -> widths[0] x (H / 2^n) x (W / 2^n); then per width one SPADEResBlock modulated by
    s and an x2 upsampling (n = len(widths)); then a head conditioned on the target modality:
    ``per_target`` = one independent conv head per modality (the released code used the SOURCE
    modality's head on the cross path, a bug), or ``condconv`` = one CondConv head routed by
    the target. Linear output (z-scored images are not bounded to [-1, 1]).
    """

    def __init__(self, anatomy_channels: int, z_dim: int, widths: Sequence[int], image_size: tuple[int, int],
                 out_channels: int, n_modalities: int, spade_hidden: int, head: str = "per_target", n_experts: int = 3,
                 anatomy_skip: bool = False):
        super().__init__()
        stride = 2 ** len(widths)
        self.start_shape = (widths[0], image_size[0] // stride, image_size[1] // stride)
        self.fc = nn.Linear(z_dim, widths[0] * self.start_shape[1] * self.start_shape[2])
        self.blocks = nn.ModuleList()
        channels = widths[0]
        for width in widths:
            self.blocks.append(SPADEResBlock(channels, width, anatomy_channels, spade_hidden))
            channels = width

        # anatomy_skip (ours): full-resolution s joins the head's input (the last SPADE block runs at H/2).
        self.anatomy_skip = anatomy_skip
        head_in = channels + (anatomy_channels if anatomy_skip else 0)

        def head_net(kind: str) -> RoutedSequential:
            # LeakyReLU, as SPADE's image head: the last block's output is not normalised, and
            # with ReLU it drifted all-negative within ~20 steps (tiny preset, lr 2e-3), which
            # cut every gradient to the decoder and froze the output at a constant image.
            return RoutedSequential(
                nn.LeakyReLU(0.2), make_conv(kind, head_in, channels, 3, 1, 1, n_modalities, n_experts),
                nn.LeakyReLU(0.2), make_conv(kind, channels, out_channels, 3, 1, 1, n_modalities, n_experts),
            )

        if head == "per_target":
            self.head: nn.Module = PerModality([head_net("conv") for _ in range(n_modalities)])
        elif head == "condconv":
            self.head = head_net("condconv")
        else:
            raise ValueError(f"SPADEDecoder: head={head!r} must be 'per_target' or 'condconv'")

    def forward(self, s: torch.Tensor, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """s [N, C, H, W], z [N, z_dim], target [N] modality index -> [N, K, H, W]."""
        h = self.fc(z).view(z.shape[0], *self.start_shape)
        for block in self.blocks:
            # s resized once per scale (its SPADE layers then skip their own resize): same values.
            s_here = F.interpolate(s, size=h.shape[-2:], mode="area") if s.shape[-2:] != h.shape[-2:] else s
            h = F.interpolate(block(h, s_here), scale_factor=2, mode="nearest")
        if self.anatomy_skip:
            h = torch.cat([h, s], dim=1)
        return self.head(h, target)

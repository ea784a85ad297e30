"""Bottom-up encoder of one modality (or of the concatenated inputs for ``concat_zeros``)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from raysys.models.mmhvae.blocks import EncoderCell


class Encoder(nn.Module):
    """A ladder of residual SE cells with stride-2 convs between resolutions.

    Args:
        in_channels: 1 for a per-modality encoder, M for the concatenated-inputs ablation.
        channels: features at each spatial group, finest first (n entries).
    Forward:
        x [B, in_channels, H, W] -> (skips, bottom): skips[k] [B, channels[k], H/2^k, W/2^k]
        for k = 0..n-1 and bottom [B, channels[-1], H/2^n, W/2^n].
    """

    def __init__(self, in_channels: int, channels: Sequence[int]):
        super().__init__()
        channels = list(channels)
        self.stem = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.cells = nn.ModuleList(EncoderCell(c) for c in channels)
        below = channels[1:] + channels[-1:]
        self.downs = nn.ModuleList(nn.Conv2d(c, c_next, 3, stride=2, padding=1) for c, c_next in zip(channels, below))
        self.bottom_cell = EncoderCell(channels[-1])

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        h = self.stem(x)
        skips = []
        for cell, down in zip(self.cells, self.downs):
            h = cell(h)
            skips.append(h)
            h = down(h)
        return skips, self.bottom_cell(h)

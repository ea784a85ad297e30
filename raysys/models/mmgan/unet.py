"""The MM-GAN generator: a pix2pix U-Net from all M (imputed) modalities to all M (Sec. III-A)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def down_block(c_in: int, c_out: int, normalise: bool, dropout: float) -> nn.Sequential:
    """4x4 stride-2 conv (no bias), InstanceNorm, LeakyReLU 0.2, optional dropout: halves H and W."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=False)]
    if normalise:
        layers.append(nn.InstanceNorm2d(c_out))
    layers.append(nn.LeakyReLU(0.2))
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def up_block(c_in: int, c_out: int, dropout: float) -> nn.Sequential:
    """4x4 stride-2 transposed conv (no bias), InstanceNorm, ReLU, optional dropout: doubles H and W."""
    layers: list[nn.Module] = [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False), nn.InstanceNorm2d(c_out), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class UNetGenerator(nn.Module):
    """U-Net with ``len(channels)`` levels: [B, M, H, W] -> [B, M, H, W] in (-1, 1) (tanh).

    Level i (0 = finest) halves the resolution to width ``channels[i]``; the innermost level has
    no normalisation (its map may be 1x1); levels i >= ``dropout_from`` use dropout, in the encoder
    and in the decoder blocks that return to them. Decoder block outputs are concatenated with the
    encoder features of the same resolution; the last layer upsamples x2, and a 4x4 conv + tanh
    gives the M images. H and W must be multiples of 2**len(channels) (``MMGAN`` pads to one).
    """

    def __init__(self, n_modalities: int, channels: tuple[int, ...], dropout: float = 0.0, dropout_from: int = 0):
        super().__init__()
        depth = len(channels)
        drop = [dropout if i >= dropout_from else 0.0 for i in range(depth)]
        self.down = nn.ModuleList(
            down_block(n_modalities if i == 0 else channels[i - 1], channels[i], normalise=0 < i < depth - 1, dropout=drop[i])
            for i in range(depth)
        )
        # Up block k goes from level depth-1-k to level depth-2-k; its input is the previous block's
        # output concatenated with the skip (except the first, which reads the innermost features).
        self.up = nn.ModuleList()
        for level in range(depth - 2, -1, -1):
            c_in = channels[level + 1] * (1 if level == depth - 2 else 2)
            self.up.append(up_block(c_in, channels[level], drop[level]))
        self.final = nn.Sequential(
            nn.Upsample(scale_factor=2),
            nn.ZeroPad2d((1, 0, 1, 0)),
            nn.Conv2d(channels[0] * (2 if depth > 1 else 1), n_modalities, 4, padding=1),
            nn.Tanh(),
        )
        self.stride = 2**depth
        self.apply(init_normal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, M, H, W] (H, W multiples of ``stride``) -> [B, M, H, W]."""
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        for k, block in enumerate(self.up):
            x = torch.cat([block(x), skips[-2 - k]], dim=1)
        return self.final(x)


def init_normal(module: nn.Module) -> None:
    """Conv weights ~ N(0, 0.02) (pix2pix, the released ``weights_init_normal``)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def pad_to_multiple(x: torch.Tensor, multiple: int, value: float) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad [..., H, W] at the bottom/right with ``value`` to multiples of ``multiple``; returns (padded, (H, W))."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), value=value)
    return x, (h, w)

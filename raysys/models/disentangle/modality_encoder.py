"""Modality encoder E^M: K context slices -> a deterministic modality code z."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from raysys.models.disentangle.condconv import RoutedSequential, make_conv


class ModalityEncoder(nn.Module):
    """E^M (paper sec. 4.2): 5 convs 3x3 stride 2 (16-32-64-128-128), LeakyReLU 0.2, FC -> z.

    Deterministic z (the released code sampled a VAE z with KL weight 0; we drop the unused
    variance head). Convs are routed (PlainConv or CondConv2d); the FC is shared by all routes.
    Input x [N, K, H, W] with route [N]; output z [N, z_dim].
    """

    def __init__(self, in_channels: int, widths: Sequence[int], image_size: tuple[int, int], z_dim: int,
                 conv_kind: str = "conv", n_routes: int = 1, n_experts: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for width in widths:
            layers += [make_conv(conv_kind, channels, width, 3, 2, 1, n_routes, n_experts), nn.LeakyReLU(0.2)]
            channels = width
        self.convs = RoutedSequential(*layers)
        stride = 2 ** len(widths)
        self.fc = nn.Linear(channels * (image_size[0] // stride) * (image_size[1] // stride), z_dim)

    def forward(self, x: torch.Tensor, route: torch.Tensor) -> torch.Tensor:
        """x [N, K, H, W], route [N] -> z [N, z_dim]."""
        return self.fc(self.convs(x, route).flatten(1))

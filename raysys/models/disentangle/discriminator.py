"""+Adv baseline: a classifier that tries to tell the source modality from the anatomy s."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class AnatomyDiscriminator(nn.Module):
    """s [N, C, H, W] -> modality logits [N, M]: conv 4x4 stride 2 + LeakyReLU(0.2) per width,
    global average pooling, linear. The encoder is trained to make it uninformative."""

    def __init__(self, anatomy_channels: int, widths: Sequence[int], n_modalities: int):
        super().__init__()
        layers: list[nn.Module] = []
        channels = anatomy_channels
        for width in widths:
            layers += [nn.Conv2d(channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            channels = width
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(channels, n_modalities)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        """s [N, C, H, W] -> logits [N, M]."""
        return self.classifier(self.features(s))

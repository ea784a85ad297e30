"""Anatomical encoder E^A: a U-Net mapping K context slices to a soft anatomy map s."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from raysys.models.disentangle.condconv import RoutedSequential, make_conv


class AnatomyEncoder(nn.Module):
    """E^A (paper sec. 4.2): C32-C64-C128-C256-C256-CD256-CD128-CD64-CD32, conv to C, softmax.

    ``C_k`` = Conv 4x4 stride 2 - BatchNorm - LeakyReLU(0.2); ``CD_k`` = Upsample x2 - Conv 3x3 -
    BatchNorm - ReLU, with the U-Net skip (concatenation) of the encoder level at the same size.
    The last level is upsampled to full size and mapped by a 3x3 conv to C channels; a plain
    softmax over C (no extra "null" logit as in the released code). With ``input_skip`` (ours)
    the input x is concatenated to that last conv's input: otherwise every path to s passes
    through H/2 (the first conv has stride 2), which caps self-reconstruction SSIM at 64x64.

    Convs are routed (PlainConv or CondConv2d via ``conv_kind``); BatchNorm is shared.
    Input x [N, K, H, W] with route [N]; output s [N, C, H, W], channels sum to 1.
    """

    def __init__(self, in_channels: int, widths: Sequence[int], out_channels: int, conv_kind: str = "conv",
                 n_routes: int = 1, n_experts: int = 3, input_skip: bool = False):
        super().__init__()

        def conv(cin: int, cout: int, k: int, stride: int, pad: int):
            return make_conv(conv_kind, cin, cout, k, stride, pad, n_routes, n_experts)

        self.down = nn.ModuleList()
        channels = in_channels
        for width in widths:  # C_k blocks: H -> H/2 each
            self.down.append(RoutedSequential(conv(channels, width, 4, 2, 1), nn.BatchNorm2d(width), nn.LeakyReLU(0.2)))
            channels = width
        self.up = nn.ModuleList()
        skip_widths = list(widths[:-1])[::-1]
        for skip in skip_widths:  # CD_k blocks mirror the encoder, k = width of the skip level
            self.up.append(RoutedSequential(nn.Upsample(scale_factor=2, mode="nearest"), conv(channels, skip, 3, 1, 1),
                                            nn.BatchNorm2d(skip), nn.ReLU()))
            channels = 2 * skip  # concatenated with the skip
        # input_skip (ours): the input joins the last conv, the only full-resolution path to s.
        self.input_skip = input_skip
        head_in = channels + (in_channels if input_skip else 0)
        self.head = RoutedSequential(nn.Upsample(scale_factor=2, mode="nearest"), conv(head_in, out_channels, 3, 1, 1))

    def forward(self, x: torch.Tensor, route: torch.Tensor) -> torch.Tensor:
        """x [N, K, H, W], route [N] -> s [N, C, H, W] (softmax over C)."""
        skips, image = [], x
        for block in self.down:
            x = block(x, route)
            skips.append(x)
        skips.pop()  # the bottleneck is not a skip
        for block in self.up:
            x = torch.cat([block(x, route), skips.pop()], dim=1)
        if self.input_skip:
            upsample, last_conv = self.head.layers
            logits = last_conv(torch.cat([upsample(x), image], dim=1), route)
        else:
            logits = self.head(x, route)
        return torch.softmax(logits, dim=1)

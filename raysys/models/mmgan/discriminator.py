"""The MM-GAN discriminator: a PatchGAN that scores each modality, conditioned on the generator's input (Sec. III-B)."""

from __future__ import annotations

import torch
from torch import nn

from raysys.models.mmgan.unet import init_normal


class ConditionalPatchDiscriminator(nn.Module):
    """[B, M, H, W] condition + [B, M, H, W] images -> patch scores [B, M, H/2**n, W/2**n].

    The two are concatenated (2M channels, pix2pix); ``len(channels)`` 4x4 stride-2 blocks
    (InstanceNorm after all but the first, LeakyReLU 0.2), then a 4x4 conv to M score maps, one
    per modality, so implicit conditioning can label each modality real or fake. No sigmoid (LSGAN).
    The condition is what the generator saw (the zero-imputed inputs), as in pix2pix; the released
    training script passes the ground truth there instead.
    """

    def __init__(self, n_modalities: int, channels: tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 2 * n_modalities
        for i, c_out in enumerate(channels):
            layers.append(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1))
            if i > 0:
                layers.append(nn.InstanceNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2))
            c_in = c_out
        layers += [nn.ZeroPad2d((1, 0, 1, 0)), nn.Conv2d(c_in, n_modalities, 4, padding=1, bias=False)]
        self.body = nn.Sequential(*layers)
        self.n_modalities = n_modalities
        self.apply(init_normal)

    def forward(self, condition: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        m = self.n_modalities
        if condition.shape != images.shape or images.dim() != 4 or images.shape[1] != m:
            raise ValueError(f"condition and images must both be [N, {m}, H, W], got {tuple(condition.shape)} and {tuple(images.shape)}")
        return self.body(torch.cat([condition, images], dim=1))

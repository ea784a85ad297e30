"""Model size: parameters and multiply-accumulates per slice (torch.utils.flop_counter)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from raysys.models.mmhvae.config import MMHVAEConfig
from raysys.models.mmhvae.discriminator import PatchDiscriminators
from raysys.models.mmhvae.model import MMHVAE


@torch.no_grad()
def model_size(config: MMHVAEConfig, modalities: Sequence[str]) -> dict[str, float]:
    """Generator parameters, discriminator parameters and GMACs (1 MAC = 2 FLOPs as counted by
    ``FlopCounterMode``: convolutions and matmuls) to synthesise every modality of ONE slice of
    ``image_size``^2 from all inputs at the inference temperature."""
    m = len(modalities)
    model = MMHVAE(config, m).eval()
    discriminators = PatchDiscriminators(m, config.disc_channels, config.disc_layers)
    size = config.image_size
    images = torch.rand(1, m, size, size) * (config.data_range[1] - config.data_range[0]) + config.data_range[0]
    available = torch.ones(1, m, dtype=torch.bool)
    with FlopCounterMode(display=False) as counter:
        model.synthesise(images, available, mask=torch.ones(1, size, size, dtype=torch.bool))
    return {
        "params_generator": sum(p.numel() for p in model.parameters()),
        "params_discriminators": sum(p.numel() for p in discriminators.parameters()),
        "gmacs_per_slice_all_inputs": counter.get_total_flops() / 2e9,
        "image_size": size,
        "levels": config.levels,
    }

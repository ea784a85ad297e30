"""The segmenter module: what the network sees for each input mode, the frozen parts, the U-Net.

Shapes: images [B, M, K, H, W] (K context slices; the standard modes use the centre slice),
available bool [B, M], position float [B] in [0, 1) (the slice's relative position within its
subject's stored slices; only ``standard_avg`` reads it), logits [B, 4, H, W] (classes of
``regions.LABELS``).

| input_mode      | network input [B, C_in, H, W]                                                |
|-----------------|-------------------------------------------------------------------------------|
| fused_anatomy   | Concat(max, mean, min) of the frozen disentangle encoder's s over the available |
| standard_zero   | centre slices, missing modalities 0                                            |
| standard_avg    | centre slices, missing ones = cohort-mean image of that modality at the position |
| mmhvae_impute   | centre slices, missing ones synthesised by the frozen mmhvae from the available |
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from raysys.models.segmenter.config import UPSTREAM_FAMILY, SegmenterConfig, upstream_spec
from raysys.models.segmenter.regions import LABELS, classes_to_labels

NETWORK = "network"  # the trainable part; every other tensor of the state dict is frozen


def relative_bins(position: torch.Tensor, bins: int) -> torch.Tensor:
    """Bin of each relative position [B] in [0, 1): ``floor(position * bins)``, the bins of
    ``raysys.evaluate.baselines.position_bins`` for position ``(i + 0.5) / count``."""
    return (position.float() * bins).long().clamp(0, bins - 1)


def build_network(config: SegmenterConfig, in_channels: int) -> nn.Module:
    from monai.networks.nets import AttentionUnet, UNet

    if config.network == "unet":
        return UNet(2, in_channels, len(LABELS), config.channels, config.strides, num_res_units=config.num_res_units,
                    dropout=config.dropout)
    return AttentionUnet(2, in_channels, len(LABELS), config.channels, config.strides, dropout=config.dropout)


def build_upstream(config: SegmenterConfig, modalities: Sequence[str]) -> nn.Module | None:
    """The frozen upstream module of ``config.upstream`` (architecture only; weights come with the
    segmenter's state), or None for the standard modes. Checks it fits the segmenter's data."""
    family = UPSTREAM_FAMILY.get(config.input_mode)
    if family is None:
        return None
    if not config.upstream:
        raise ValueError(f"SegmenterConfig.upstream: input_mode {config.input_mode!r} needs the description "
                         f"of its frozen {family} model")
    from raysys.models import build_model

    spec = upstream_spec(config)
    if list(spec["modalities"]) != list(modalities):
        raise ValueError(f"the upstream {family} model ({spec.get('uri', '?')}) was trained on modalities "
                         f"{list(spec['modalities'])}, the segmenter's data has {list(modalities)}")
    module = build_model(family, spec["preset"], list(spec["modalities"]), **spec["model_config"])
    size = module.config.image_size
    size = (size, size) if isinstance(size, int) else tuple(size)
    if size != tuple(config.image_size):
        raise ValueError(f"the upstream {family} model ({spec.get('uri', '?')}) takes {size[0]}x{size[1]} images, "
                         f"the segmenter's image_size is {tuple(config.image_size)}")
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


class SegmenterModel(nn.Module):
    """``upstream`` (frozen, optional), ``cohort_mean`` (buffer [M, bins, H, W], standard_avg)
    and ``network`` (a MONAI AttentionUnet or UNet, the only trainable part)."""

    def __init__(self, config: SegmenterConfig, modalities: Sequence[str]):
        super().__init__()
        self.config = config
        self.modalities = tuple(modalities)
        m, (h, w) = len(self.modalities), config.image_size
        self.upstream = build_upstream(config, self.modalities)
        if config.input_mode == "standard_avg":
            if config.position_bins < 1:
                raise ValueError("SegmenterConfig.position_bins: input_mode 'standard_avg' needs >= 1 bin of cohort-mean images")
            self.register_buffer("cohort_mean", torch.zeros(m, config.position_bins, h, w))
        in_channels = 3 * self.upstream.config.anatomy_channels if config.input_mode == "fused_anatomy" else m
        self.network = build_network(config, in_channels)

    @property
    def context(self) -> int | None:
        """K the module reads: the disentangle encoder's context (fused_anatomy), else None (any K, centre used)."""
        return int(self.upstream.config.context) if self.config.input_mode == "fused_anatomy" else None

    def train(self, mode: bool = True) -> "SegmenterModel":
        super().train(mode)
        if self.upstream is not None:
            self.upstream.eval()  # frozen: BatchNorm statistics and dropout stay those of the upstream model
        return self

    # --- frozen parts -------------------------------------------------------------------------
    def frozen_state_dict(self) -> dict[str, torch.Tensor]:
        """Every tensor of the state dict outside ``network`` (upstream weights, cohort means)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(NETWORK + ".")}

    def load_frozen(self, state: Mapping[str, torch.Tensor], source: str = "frozen parts") -> None:
        """Load exactly the frozen tensors (``frozen_state_dict``'s keys and shapes) from ``state``."""
        expected = self.frozen_state_dict()
        missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        if missing or unexpected:
            raise ValueError(f"{source}: not the frozen parts of this segmenter (missing {missing[:5]}, unexpected {unexpected[:5]})")
        for key, value in state.items():
            if tuple(value.shape) != tuple(expected[key].shape):
                raise ValueError(f"{source}: {key} has shape {tuple(value.shape)}, expected {tuple(expected[key].shape)}")
        self.load_state_dict(dict(state), strict=False)

    # --- forward --------------------------------------------------------------------------------
    @torch.no_grad()
    def network_input(self, images: torch.Tensor, available: torch.Tensor, position: torch.Tensor | None = None) -> torch.Tensor:
        """What the network sees (module docstring): [B, C_in, H, W]."""
        if images.dim() != 5 or images.shape[1] != len(self.modalities):
            raise ValueError(f"images {tuple(images.shape)} must be [B, M={len(self.modalities)}, K, H, W]")
        available = available.bool()
        mode = self.config.input_mode
        if mode == "fused_anatomy":
            return self.upstream.fused_anatomy(images, available)
        centre = images[:, :, images.shape[2] // 2].float()
        keep = available[:, :, None, None]
        if mode == "standard_zero" or bool(available.all()):
            return torch.where(keep, centre, torch.zeros((), device=centre.device))
        if mode == "standard_avg":
            if position is None:
                position = torch.full((images.shape[0],), 0.5, device=images.device)
            means = self.cohort_mean[:, relative_bins(position.to(images.device), self.cohort_mean.shape[1])]  # [M, B, H, W]
            return torch.where(keep, centre, means.transpose(0, 1))
        generator = torch.Generator(device=images.device).manual_seed(0)
        synthesised = self.upstream.synthesise(centre, available, temperature=self.config.impute_temperature,
                                               generator=generator)
        return torch.where(keep, centre, synthesised.float())

    def forward(self, images: torch.Tensor, available: torch.Tensor, position: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, 4, H, W]."""
        return self.network(self.network_input(images, available, position))

    @torch.no_grad()
    def segment(self, images: torch.Tensor, available: torch.Tensor, position: torch.Tensor | None = None) -> torch.Tensor:
        """BraTS labels {0, 1, 2, 4} [B, H, W] (int64)."""
        return classes_to_labels(self.forward(images, available, position).argmax(dim=1))

"""The MMHVAE generator: encoders, fusion of the observed subset, shared top-down path, heads.

Spaces: callers pass images in DATA space (the store's values, ``config.data_range``); inside,
images live in MODEL space [-1, 1] (the tanh heads' range), mapped linearly. Missing
modalities may hold anything (zeros by the batch contract): they never reach a posterior.
A model with ``config.input_range`` encodes inputs of that other data space (raw images) and
still outputs (and is trained to reconstruct) the ``data_range`` images: harmonisation.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
from torch import nn

from raysys.models.mmhvae.config import MMHVAEConfig
from raysys.models.mmhvae.encoder import Encoder
from raysys.models.mmhvae.heads import ImageHead
from raysys.models.mmhvae.topdown import Evidence, TopDown, TopDownResult


@dataclasses.dataclass
class Encoding:
    """Per-modality encoder outputs for B samples (``poe`` / ``average``): skips[k]
    [B, M, C_k, H_k, W_k], bottom [B, M, F]. For ``concat_zeros`` the encoder input depends on
    the subset, so only the model-space images [B, M, H, W] are kept and encoded per subset."""

    skips: list[torch.Tensor] | None
    bottom: torch.Tensor | None
    images: torch.Tensor


class TrainOutput(NamedTuple):
    """What one training forward returns (everything the loss needs, for DDP's single call; a
    NamedTuple so DDP / pytree utilities can find the tensors).

    recon: [T, B, M, H, W] model-space reconstructions/syntheses from each drawn subset;
    target: [B, M, H, W] model-space inputs with the background set to ``MMHVAE.background``;
    kl: [T, B, G] KL per latent group (finest first, ``groups``); groups: the latent groups.
    """

    recon: torch.Tensor
    target: torch.Tensor
    kl: torch.Tensor
    groups: tuple[int, ...]


class MMHVAE(nn.Module):
    """Multi-modal hierarchical VAE (Dorent et al.) for ``n_modalities`` co-registered 2D images."""

    def __init__(self, config: MMHVAEConfig, n_modalities: int):
        super().__init__()
        if n_modalities < 1:
            raise ValueError(f"n_modalities must be >= 1, got {n_modalities}")
        self.config = config
        self.n_modalities = n_modalities
        if config.fusion == "concat_zeros":  # one encoder on all inputs, zeros for the missing ones
            self.encoders = nn.ModuleList([Encoder(n_modalities, config.channels)])
        else:
            self.encoders = nn.ModuleList(Encoder(1, config.channels) for _ in range(n_modalities))
        self.top_down = TopDown(config)
        head_in = config.channels[0] // 2 + (config.channels[0] if config.head_input == "z1_state" else 0)
        self.heads = nn.ModuleList(
            ImageHead(head_in, config.head_channels, config.head_blocks, config.head_kernel, config.head_activation)
            for _ in range(n_modalities)
        )

    # --- spaces -------------------------------------------------------------------------
    @property
    def background(self) -> float:
        """Model-space value written outside the foreground: ``config.background`` (data space, the
        store's value outside the brain mask, 0) mapped like the images (-1 for a (0, 1) range, 0
        for a z-score (-5, 5) range). Writing the range's low end there instead left a step at the
        brain's edge that the SSIM window sees: a perfect z-scored prediction scored SSIM 0.58."""
        lo, hi = self.config.data_range
        return min(1.0, max(-1.0, 2.0 * (self.config.background - lo) / (hi - lo) - 1.0))

    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        """Data space (``config.data_range``) -> [-1, 1], clipped."""
        lo, hi = self.config.data_range
        return (2.0 * (x - lo) / (hi - lo) - 1.0).clamp(-1.0, 1.0)

    @property
    def raw_inputs(self) -> bool:
        """Whether the encoders read raw images (``config.input_range``), not the targets' space."""
        return self.config.input_range is not None

    def inputs_to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder inputs, data space (``config.input_range``, else ``data_range``) -> [-1, 1], clipped."""
        lo, hi = self.config.input_range or self.config.data_range
        return (2.0 * (x - lo) / (hi - lo) - 1.0).clamp(-1.0, 1.0)

    def to_data_space(self, y: torch.Tensor) -> torch.Tensor:
        """[-1, 1] -> data space."""
        lo, hi = self.config.data_range
        return lo + (y + 1.0) * 0.5 * (hi - lo)

    def _check_images(self, images: torch.Tensor) -> None:
        size = self.config.image_size
        if images.dim() != 4 or images.shape[1] != self.n_modalities or tuple(images.shape[-2:]) != (size, size):
            raise ValueError(
                f"images must be [B, {self.n_modalities}, {size}, {size}] (config.image_size={size}), "
                f"got {tuple(images.shape)}"
            )

    # --- the three steps ----------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> Encoding:
        """Model-space images [B, M, H, W] -> per-modality features (each modality encoded once,
        whatever subsets are decoded later; every encoder always runs, which keeps every
        parameter in the graph for DDP)."""
        if self.config.fusion == "concat_zeros":
            return Encoding(None, None, x)
        outputs = [encoder(x[:, j : j + 1]) for j, encoder in enumerate(self.encoders)]
        skips = [torch.stack([out[0][k] for out in outputs], dim=1) for k in range(len(self.config.channels))]
        bottom = torch.stack([out[1].flatten(1) for out in outputs], dim=1)
        return Encoding(skips, bottom, x)

    def evidence(self, encoding: Encoding, subsets: torch.Tensor) -> Evidence:
        """Fuse-ready features for input subsets [N, M] bool, N a multiple of B (draw-major:
        row t * B + b is draw t of sample b); one expert per modality for ``poe``, one fused
        expert for ``average`` and ``concat_zeros``."""
        b = encoding.images.shape[0]
        repeats = subsets.shape[0] // b
        if repeats * b != subsets.shape[0]:
            raise ValueError(f"subsets rows ({subsets.shape[0]}) must be a multiple of the batch ({b})")
        fusion = self.config.fusion
        if fusion == "concat_zeros":
            x = encoding.images.repeat(repeats, 1, 1, 1)
            x = torch.where(subsets[:, :, None, None], x, torch.zeros_like(x))
            skips, bottom = self.encoders[0](x)
            one = torch.ones_like(subsets[:, :1])
            return Evidence([s.unsqueeze(1) for s in skips], bottom.flatten(1).unsqueeze(1), one)

        def tile(t: torch.Tensor) -> torch.Tensor:
            return t.repeat(repeats, *([1] * (t.dim() - 1)))

        bottom = tile(encoding.bottom)
        if fusion == "poe":  # the skips are the same for every draw: stored once
            return Evidence(encoding.skips, bottom, subsets, draws=repeats)
        skips = [tile(s) for s in encoding.skips]
        # "average": deterministic mean of the observed modalities' features at every level.
        count = subsets.sum(dim=1).clamp(min=1).to(bottom.dtype)

        def mean(t: torch.Tensor) -> torch.Tensor:
            keep = subsets.view(*subsets.shape, *([1] * (t.dim() - 2)))
            total = torch.where(keep, t, torch.zeros_like(t)).sum(dim=1, keepdim=True)
            return total / count.view(-1, 1, *([1] * (t.dim() - 2)))

        one = torch.ones_like(subsets[:, :1])
        return Evidence([mean(s) for s in skips], mean(bottom), one)

    def decode(
        self,
        evidence: Evidence | None,
        mask: torch.Tensor | None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        batch_size: int | None = None,
    ) -> tuple[torch.Tensor, TopDownResult]:
        """Top-down pass and image heads -> (images [N, M, H, W] model space, top-down result).
        Outside ``mask`` [N, H, W] (foreground) the images are set to ``self.background``."""
        result = self.top_down(evidence, batch_size=batch_size, temperature=temperature, generator=generator)
        images = torch.cat([head(result.head_input) for head in self.heads], dim=1)
        if mask is not None:
            images = torch.where(mask[:, None].bool(), images, torch.full_like(images, self.background))
        return images, result

    # --- entry points -------------------------------------------------------------------
    def forward(self, images: torch.Tensor, input_subsets: torch.Tensor, mask: torch.Tensor,
                inputs: torch.Tensor | None = None) -> TrainOutput:
        """Training pass for T subset draws in one call (so a DDP wrapper sees one forward).

        Args:
            images: [B, M, H, W] data space, the targets (and the inputs unless ``inputs`` is given).
            input_subsets: bool [T, B, M], each row a non-empty subset of the sample's observed
            modalities. mask: bool [B, H, W] foreground. inputs: [B, M, H, W] the encoder inputs in
            ``config.input_range`` (raw images); required exactly when the config has one.
        """
        self._check_images(images)
        t, b, m = input_subsets.shape
        if b != images.shape[0] or m != self.n_modalities:
            raise ValueError(f"input_subsets must be [T, {images.shape[0]}, {self.n_modalities}], got {tuple(input_subsets.shape)}")
        if (inputs is not None) != self.raw_inputs:
            raise ValueError("inputs (raw images) must be given exactly when config.input_range is set")
        if inputs is not None and inputs.shape != images.shape:
            raise ValueError(f"inputs {tuple(inputs.shape)} must have the shape of images {tuple(images.shape)}")
        x = self.to_model_space(images)
        foreground = mask.bool()
        target = torch.where(foreground[:, None], x, torch.full_like(x, self.background))
        encoded = x if inputs is None else self.inputs_to_model_space(inputs)
        evidence = self.evidence(self.encode(encoded), input_subsets.reshape(t * b, m))
        recon, result = self.decode(evidence, foreground.repeat(t, 1, 1))
        return TrainOutput(
            recon=recon.view(t, b, *recon.shape[1:]),
            target=target,
            kl=result.kl.view(t, b, -1),
            groups=result.groups,
        )

    @torch.no_grad()
    def synthesise(
        self,
        images: torch.Tensor,
        available: torch.Tensor,
        temperature: float | None = None,
        mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """All M modalities from the available ones (harmonisation and synthesis).

        Args:
            images: [B, M, H, W] or [B, M, K, H, W] (centre slice used), data space: the encoder
                inputs (raw images, ``config.input_range``, for a model with ``raw_inputs``).
            available: bool [B, M], at least one per sample: the input subset.
            temperature: posterior std scale (default ``config.temperature``; 0 = posterior mean).
            mask: bool [B, H, W] foreground; default: voxels that differ from the background
                (``config.background``) in any available input.
        Returns:
            [B, M, H, W] data space (``config.data_range``).
        """
        if images.dim() == 5:
            images = images[:, :, images.shape[2] // 2]
        self._check_images(images)
        available = available.bool()
        if available.shape != images.shape[:2] or not bool(available.any(dim=1).all()):
            raise ValueError(f"available must be bool {tuple(images.shape[:2])} with >= 1 modality per sample")
        x = self.inputs_to_model_space(images)
        if mask is None:  # in data space: the store writes config.background (0) outside the brain, raw images too
            lo, hi = self.config.input_range or self.config.data_range
            tolerance = 1e-3 * (hi - lo) / 2  # 1e-3 in model space
            mask = (((images - self.config.background).abs() > tolerance) & available[:, :, None, None]).any(dim=1)
        temperature = self.config.temperature if temperature is None else temperature
        out, _ = self.decode(self.evidence(self.encode(x), available), mask.bool(), temperature, generator)
        return self.to_data_space(out)

    @torch.no_grad()
    def sample(self, batch_size: int, temperature: float | None = None) -> torch.Tensor:
        """Unconditional samples from the hierarchical prior: [batch_size, M, H, W] data space."""
        temperature = self.config.temperature if temperature is None else temperature
        out, _ = self.decode(None, None, temperature, batch_size=batch_size)
        return self.to_data_space(out)

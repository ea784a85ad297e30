"""Ready-to-use inference objects around a family's inference module (numpy or torch in, arrays out).

Images are ``[B, M, K, H, W]`` (K context slices, as in training) or ``[B, M, H, W]`` (one slice,
repeated as its own context: the edge rule of ``SliceDataset``). ``available`` is bool ``[B, M]``;
``None`` means every modality whose image is not all zeros. Inputs of another in-plane size than
the model was built for are resampled to it (bilinear, antialiased) and the outputs back, so any
image size works; a model whose modules are size-agnostic is run at the given size directly.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ArrayLike = Any  # np.ndarray | torch.Tensor


class Inference:
    """Common input handling; ``family``, ``modalities`` and ``meta`` describe the model."""

    family = ""

    def __init__(self, module: nn.Module, meta: dict[str, Any], device: str | torch.device = "cpu"):
        self.module = module.eval()
        self.meta = meta
        self.modalities: tuple[str, ...] = tuple(meta["modalities"])
        self.device = torch.device(device)
        config = getattr(module, "config", None)
        size = getattr(config, "image_size", None)
        self.image_size: tuple[int, int] | None = None if size is None else ((size, size) if isinstance(size, int) else tuple(size))
        # K context slices the module takes (None: any K, the module uses the centre slice).
        self.context: int | None = getattr(config, "context", None)
        # Whether the module encodes raw images (trained with train.inputs=raw): callers pass the
        # store's raw/<modality> slices as inputs; outputs are in the normalised space.
        self.raw_inputs: bool = getattr(config, "input_range", None) is not None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(modalities={list(self.modalities)}, image_size={self.image_size}, source={self.meta.get('source')})"

    def _inputs(self, images: ArrayLike, available: ArrayLike | None) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
        x = x.to(self.device, torch.float32)
        m = len(self.modalities)
        if x.dim() == 4:
            x = x.unsqueeze(2).expand(-1, -1, self.context or 1, -1, -1)
        if x.dim() != 5 or x.shape[1] != m or (self.context is not None and x.shape[2] != self.context):
            raise ValueError(
                f"images {tuple(x.shape)} must be [B, M={m}, H, W] or [B, M={m}, K={self.context or 'K'}, H, W] "
                f"(modalities {list(self.modalities)})"
            )
        if not torch.isfinite(x).all():
            raise ValueError("images contain nan or inf")
        if available is None:
            avail = x.flatten(2).abs().amax(-1) > 0
        else:
            avail = torch.as_tensor(np.asarray(available) if not isinstance(available, torch.Tensor) else available)
            avail = avail.to(self.device).bool()
        if tuple(avail.shape) != tuple(x.shape[:2]):
            raise ValueError(f"available {tuple(avail.shape)} must be [B, M]={tuple(x.shape[:2])}")
        if not avail.any(1).all():
            raise ValueError("available: every sample needs at least one available modality")
        size = (int(x.shape[-2]), int(x.shape[-1]))
        x = x * avail[:, :, None, None, None]  # the models expect zeros where a modality is missing
        return self._to_model_size(x), avail, size

    def _to_model_size(self, x: torch.Tensor) -> torch.Tensor:
        if self.image_size is None or tuple(x.shape[-2:]) == self.image_size:
            return x
        lead = x.shape[:-2]
        y = F.interpolate(x.reshape(-1, 1, *x.shape[-2:]), size=self.image_size, mode="bilinear", align_corners=False, antialias=True)
        return y.reshape(*lead, *self.image_size)

    @staticmethod
    def _to_size(y: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
        if tuple(y.shape[-2:]) != size:
            lead = y.shape[:-2]
            y = F.interpolate(y.reshape(-1, 1, *y.shape[-2:]), size=size, mode="bilinear", align_corners=False, antialias=True)
            y = y.reshape(*lead, *size)
        return y.detach().float().cpu().numpy()


class DisentangleInference(Inference):
    """Anatomy s, modality z, fused anatomy and cross-synthesis (Ouyang et al.)."""

    family = "disentangle"

    @torch.no_grad()
    def anatomy(self, images: ArrayLike, available: ArrayLike | None = None) -> np.ndarray:
        """s [B, M, C, H, W] (zeros where a modality is unavailable)."""
        x, avail, size = self._inputs(images, available)
        return self._to_size(self.module.anatomy(x, avail), size)

    @torch.no_grad()
    def modality(self, images: ArrayLike, available: ArrayLike | None = None) -> np.ndarray:
        """z [B, M, Dz] (zeros where a modality is unavailable)."""
        x, avail, _ = self._inputs(images, available)
        return self.module.modality(x, avail).float().cpu().numpy()

    @torch.no_grad()
    def fused_anatomy(self, images: ArrayLike, available: ArrayLike | None = None) -> np.ndarray:
        """Concat(max, mean, min) of the available modalities' s: [B, 3C, H, W]."""
        x, avail, size = self._inputs(images, available)
        return self._to_size(self.module.fused_anatomy(x, avail), size)

    @torch.no_grad()
    def cross_synthesis(self, images: ArrayLike, source: int | str, target: int | str, available: ArrayLike | None = None) -> np.ndarray:
        """D(E^A(x_source), E^M(x_target) | target): [B, K, H, W] (both must be available)."""
        x, avail, size = self._inputs(images, available)
        return self._to_size(self.module.cross_synthesis(x, avail, source, target), size)


class SubsetSynthesis(Inference):
    """A model that synthesises every modality from any subset of available inputs:
    ``synthesise(images, available, temperature, seed) -> [B, M, H, W]`` (``raysys.evaluate`` scores
    it on every input subset x target). ``reconstructs_inputs``: whether its outputs for the
    available modalities are reconstructions (scored as harmonisation) or the inputs themselves."""

    reconstructs_inputs: ClassVar[bool] = True

    def synthesise(self, images: ArrayLike, available: ArrayLike | None = None, temperature: float = 0.5,
                   seed: int | None = 0) -> np.ndarray:
        raise NotImplementedError


class MMHVAEInference(SubsetSynthesis):
    """Synthesis of every modality from any available subset (Dorent et al.)."""

    family = "mmhvae"

    @torch.no_grad()
    def synthesise(self, images: ArrayLike, available: ArrayLike | None = None, temperature: float = 0.5,
                   seed: int | None = 0) -> np.ndarray:
        """All M modalities [B, M, H, W] from the available ones; ``temperature`` scales every
        posterior std (0 = posterior means, paper 0.5); ``seed`` makes the draw repeatable."""
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        x, avail, size = self._inputs(images, available)
        generator = None if seed is None else torch.Generator(device=self.device).manual_seed(seed)
        out = self.module.synthesise(x[:, :, x.shape[2] // 2], avail, temperature=temperature, generator=generator)
        return self._to_size(out, size)


class SegmenterInference(Inference):
    """Brain-tumour labels from the available modalities (``raysys.models.segmenter``).

    Self-contained: the module holds its frozen upstream model and cohort-mean images. Inputs
    of another in-plane size are resampled to the model's; the class probabilities are resampled
    back (bilinear) before the argmax, so labels come out at the input size.
    """

    family = "segmenter"

    def __init__(self, module: nn.Module, meta: dict[str, Any], device: str | torch.device = "cpu"):
        super().__init__(module, meta, device)
        self.context = module.context  # the disentangle encoder's K (fused_anatomy), else any K
        self.input_mode: str = module.config.input_mode

    @torch.no_grad()
    def segment(self, images: ArrayLike, available: ArrayLike | None = None, position: ArrayLike | None = None) -> np.ndarray:
        """BraTS labels {0, 1, 2, 4}: int64 [B, H, W].

        images [B, M, H, W] or [B, M, K, H, W] in the store's normalised units (M = ``modalities``,
        store order); available bool [B, M] (None: the non-zero images); position float [B] in
        [0, 1): each slice's relative position in its subject's stored slices, ``(i + 0.5) / count``
        (read by ``standard_avg`` to pick the cohort-mean image; None = 0.5).
        """
        x, avail, size = self._inputs(images, available)
        pos = None
        if position is not None:
            pos = torch.as_tensor(np.asarray(position) if not isinstance(position, torch.Tensor) else position)
            pos = pos.to(self.device, torch.float32).reshape(-1)
            if pos.shape[0] != x.shape[0]:
                raise ValueError(f"position {tuple(pos.shape)} must be [B]={x.shape[0]}")
        probabilities = torch.softmax(self.module(x, avail, pos).float(), dim=1)
        if tuple(probabilities.shape[-2:]) != size:
            probabilities = F.interpolate(probabilities, size=size, mode="bilinear", align_corners=False)
        from raysys.models.segmenter.regions import classes_to_labels

        return classes_to_labels(probabilities.argmax(dim=1)).cpu().numpy()


class MMGANInference(SubsetSynthesis):
    """Synthesis of the missing modalities from the available ones (Sharma & Hamarneh); the
    available ones are returned as given (implicit conditioning)."""

    family = "mmgan"
    reconstructs_inputs = False

    @torch.no_grad()
    def synthesise(self, images: ArrayLike, available: ArrayLike | None = None, temperature: float = 0.5,
                   seed: int | None = 0) -> np.ndarray:
        """All M modalities [B, M, H, W]: the inputs where ``available``, syntheses elsewhere.
        Deterministic: ``temperature`` and ``seed`` are accepted (the ``MMHVAEInference`` call) and ignored."""
        x, avail, size = self._inputs(images, available)
        return self._to_size(self.module.synthesise(x[:, :, x.shape[2] // 2], avail), size)


def synthesises_from_subsets(family: str) -> bool:
    """Whether the family's inference object is a ``SubsetSynthesis`` (mmhvae, mmgan)."""
    return issubclass(INFERENCE.get(family, Inference), SubsetSynthesis)


INFERENCE: dict[str, type[Inference]] = {"disentangle": DisentangleInference, "mmhvae": MMHVAEInference, "mmgan": MMGANInference,
                                         "segmenter": SegmenterInference}


def wrap(module: nn.Module, meta: dict[str, Any], device: str | torch.device = "cpu") -> Inference:
    family = meta["family"]
    if family not in INFERENCE:
        raise ValueError(f"no inference wrapper for family {family!r}; known: {sorted(INFERENCE)}")
    return INFERENCE[family](module, meta, device)


__all__: Sequence[str] = [
    "DisentangleInference", "Inference", "MMGANInference", "MMHVAEInference", "SegmenterInference", "SubsetSynthesis", "synthesises_from_subsets", "wrap",
]

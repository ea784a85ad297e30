"""Typed, frozen configuration of the MM-GAN family (Sharma & Hamarneh, IEEE TMI 2019) and its presets.

Defaults are the paper / released code (github trane293/mm-gan, ``train_mmgan_brats2018.py``):
a pix2pix U-Net of 8 levels, a 4-block PatchGAN with one score map per modality, LSGAN,
L_G = (1 - lambda) L_adv + lambda L_1 with lambda = 0.9, Adam(2e-4, 0.5, 0.999), zero imputation,
implicit conditioning and a four-stage curriculum (60 epochs: all scenarios from epoch 31 on).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Mapping

from raysys.models.presets import PresetBudgets


@dataclasses.dataclass(frozen=True)
class MMGANConfig(PresetBudgets):
    """Every knob of the generator, the discriminator, the objective and the optimisers.

    The model is size-agnostic: images of any H x W are padded to a multiple of 2**len(channels)
    inside the generator (so no ``image_size``; the registry runs it at the input size).
    ``data_range`` is mapped linearly onto [-1, 1] (the tanh output's range) and back; the train
    loop sets it from the store's ``value_range`` and the metrics use it as PSNR/SSIM range.
    """

    # ``cpu``: 20 epochs of 40 steps of 8 slices at 64x64, the curriculum's four stages over the first
    # half. One in-process worker on this 2-core box: 8-28 s per epoch (train + 4 validation batches;
    # the box shared) after a one-off start-up, so well under 10 minutes.
    PRESET_BUDGETS: ClassVar[Mapping[str, Mapping[str, int]]] = {
        "paper": {},
        "tiny": {},
        "cpu": {"epochs": 20, "max_steps_per_epoch": 40, "batch_size": 8, "max_val_steps": 4},
    }

    data_range: tuple[float, float] = (0.0, 1.0)
    # Data-space value outside the brain (the store's background); the generator's padding uses it.
    background: float = 0.0
    # --- generator: U-Net (Sec. III-A; pix2pix) ----------------------------------------------
    channels: tuple[int, ...] = (64, 128, 256, 512, 512, 512, 512, 512)  # encoder widths, finest first
    dropout: float = 0.2  # released code: 0.2 (pix2pix: 0.5)
    dropout_from: int = 3  # 0-based U-Net level from which blocks use dropout (released: the 512-wide ones)
    # --- discriminator: PatchGAN conditioned on the generator's input (Sec. III-B) ---------------
    disc_channels: tuple[int, ...] = (64, 128, 256, 512)  # widths of its stride-2 blocks
    # --- objective (Sec. III-C, III-D) ----------------------------------------------------------
    lambda_l1: float = 0.9  # L_G = (1 - lambda) L_adv + lambda L_1 (lambda = 1: no adversarial term)
    implicit_conditioning: bool = True  # losses only on synthesised outputs; reals put back before D
    curriculum: bool = True  # easy scenarios (few missing) first, all of them from curriculum_end on
    curriculum_stages: int = 4  # released: epochs 0-10, 11-20, 21-30, 31-60
    curriculum_end: float = 0.5  # fraction of training after which every scenario is drawn
    # --- optimisation -----------------------------------------------------------------------
    lr: float = 2e-4  # Adam, generator
    disc_lr: float = 2e-4  # Adam, discriminator
    beta1: float = 0.5
    beta2: float = 0.999

    def __post_init__(self) -> None:
        lo, hi = self.data_range
        if not hi > lo:
            raise ValueError(f"data_range must be (low, high) with high > low, got {self.data_range}")
        for name in ("channels", "disc_channels"):
            widths = getattr(self, name)
            if not widths or any(int(c) < 1 for c in widths):
                raise ValueError(f"{name} must be a non-empty tuple of positive widths, got {widths}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.dropout_from < 0:
            raise ValueError(f"dropout_from must be >= 0, got {self.dropout_from}")
        if not 0.0 <= self.lambda_l1 <= 1.0:
            raise ValueError(f"lambda_l1 must be in [0, 1] (weights L_1 against L_adv), got {self.lambda_l1}")
        if self.curriculum_stages < 1:
            raise ValueError(f"curriculum_stages must be >= 1, got {self.curriculum_stages}")
        if not 0.0 < self.curriculum_end <= 1.0:
            raise ValueError(f"curriculum_end must be in (0, 1], got {self.curriculum_end}")
        for name in ("lr", "disc_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    @property
    def stride(self) -> int:
        """Total downsampling of the U-Net: inputs are padded to a multiple of it."""
        return 2 ** len(self.channels)

    @classmethod
    def preset(cls, name: str) -> "MMGANConfig":
        """``paper``: the released widths (54 M generator parameters; 256x256 in the paper).
        ``tiny``: 4 levels, narrow; CPU tests. ``cpu``: 6 levels (64x64 down to 1x1), sized for
        a 2-core CPU box (see ``budget``)."""
        if name == "paper":
            return cls()
        if name == "tiny":
            return cls(channels=(8, 16, 32, 32), disc_channels=(8, 16, 32))
        if name == "cpu":
            return cls(channels=(32, 64, 128, 128, 128, 128), disc_channels=(32, 64, 128), lr=5e-4, disc_lr=2e-4)
        raise ValueError(f"unknown MMGAN preset {name!r}; known: {list(cls.PRESET_BUDGETS)}")

"""Typed config of the segmentation family, its presets and their training budgets."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar, Literal, Mapping

from raysys.models.presets import PresetBudgets

INPUT_MODES = ("fused_anatomy", "standard_zero", "standard_avg", "mmhvae_impute")
# The frozen upstream model each mode needs (family name), if any.
UPSTREAM_FAMILY = {"fused_anatomy": "disentangle", "mmhvae_impute": "mmhvae"}


@dataclasses.dataclass(frozen=True)
class SegmenterConfig(PresetBudgets):
    """A MONAI U-Net on one of four inputs (``input_mode``), trained with DiceCE on labels 1/2/4.

    The frozen parts of a mode (the upstream model of ``fused_anatomy`` / ``mmhvae_impute``, the
    cohort-mean images of ``standard_avg``) are buffers/submodules of the segmenter, so its state
    dict (and a registered model's ``weights.pt``) holds them. Their ARCHITECTURE is described
    here (``upstream``, ``position_bins``, ``image_size``), so the module is rebuilt from this
    config alone; their VALUES come from ``frozen_parts`` when the family is built for training.
    """

    # ``cpu``: ~2-3 minutes of training + validation at 64x64 on a 2-core CPU, one worker (24 epochs:
    # test Dice kept improving from 8 (mean 0.28) to 30 epochs (0.40-0.43) on the 24-subject phantom).
    PRESET_BUDGETS: ClassVar[Mapping[str, Mapping[str, int]]] = {
        "paper": {},
        "tiny": {},
        "cpu": {"epochs": 24, "max_steps_per_epoch": 40, "batch_size": 8, "max_val_steps": 12},
    }

    input_mode: Literal["fused_anatomy", "standard_zero", "standard_avg", "mmhvae_impute"] = "fused_anatomy"
    network: Literal["attention_unet", "unet"] = "attention_unet"  # monai.networks.nets.AttentionUnet / UNet
    channels: tuple[int, ...] = (32, 64, 128, 256, 512)  # per level; strides 2 between levels (ours)
    num_res_units: int = 2  # UNet only (MONAI's residual units per level)
    dropout: float = 0.0
    image_size: tuple[int, int] = (192, 160)  # [H, W] of the store (the job sets it from the store)
    # --- loss and optimiser (ours) ----------------------------------------------------
    lambda_dice: float = 1.0  # DiceCELoss weights
    lambda_ce: float = 1.0
    lr: float = 1e-3  # Adam
    weight_decay: float = 1e-5
    # --- frozen parts ------------------------------------------------------------------
    # JSON {"family", "preset", "modalities", "model_config", "uri"} of the frozen upstream model
    # (fused_anatomy: a disentangle model, mmhvae_impute: an mmhvae); "" for the standard modes.
    upstream: str = ""
    position_bins: int = 0  # standard_avg: relative-position bins of the cohort-mean images
    impute_temperature: float = 0.0  # mmhvae_impute: posterior std scale (0 = posterior mean, deterministic)
    # URL (shared path or fsspec URL, readable by every worker) of a partial state dict holding
    # exactly the segmenter's frozen tensors; read when the family is built, then cleared in the
    # family's config (the tensors are part of its state from then on).
    frozen_parts: str = ""

    def __post_init__(self) -> None:
        def need(ok: bool, field: str, why: str) -> None:
            if not ok:
                raise ValueError(f"SegmenterConfig.{field}={getattr(self, field)!r}: {why}")

        need(self.input_mode in INPUT_MODES, "input_mode", f"must be one of {list(INPUT_MODES)}")
        need(self.network in ("attention_unet", "unet"), "network", "must be 'attention_unet' or 'unet'")
        need(len(self.channels) >= 2 and all(int(c) > 0 for c in self.channels), "channels",
             "must hold >= 2 positive ints (levels of the U-Net)")
        need(len(self.image_size) == 2 and all(int(v) > 0 for v in self.image_size), "image_size", "must be (H, W), positive")
        stride = 2 ** (len(self.channels) - 1)
        need(all(int(v) % stride == 0 for v in self.image_size), "image_size",
             f"must be divisible by {stride} (total stride of {len(self.channels)} levels)")
        need(self.num_res_units >= 0, "num_res_units", "must be >= 0")
        need(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        for field in ("lambda_dice", "lambda_ce", "weight_decay", "impute_temperature"):
            need(getattr(self, field) >= 0, field, "must be >= 0")
        need(self.lambda_dice + self.lambda_ce > 0, "lambda_dice", "lambda_dice + lambda_ce must be > 0")
        need(self.lr > 0, "lr", "must be > 0")
        need(self.position_bins >= 0, "position_bins", "must be >= 0")
        if self.upstream:
            spec = upstream_spec(self)  # raises on malformed JSON
            need(spec["family"] == UPSTREAM_FAMILY.get(self.input_mode), "upstream",
                 f"input_mode {self.input_mode!r} takes {'no upstream model' if self.input_mode not in UPSTREAM_FAMILY else 'a ' + UPSTREAM_FAMILY[self.input_mode] + ' model'}, not a {spec['family']!r} model")

    @property
    def strides(self) -> tuple[int, ...]:
        return (2,) * (len(self.channels) - 1)

    @classmethod
    def preset(cls, name: str) -> "SegmenterConfig":
        """``paper``: 192x160, five levels 32..512. ``tiny``: 64x64, three narrow levels (tests).
        ``cpu``: 64x64, four levels 16..128 (trains in minutes on 2 cores with ``budget("cpu")``)."""
        if name == "paper":
            return cls()
        if name == "tiny":
            return cls(image_size=(64, 64), channels=(8, 16, 32))
        if name == "cpu":
            return cls(image_size=(64, 64), channels=(16, 32, 64, 128))
        raise ValueError(f"unknown SegmenterConfig preset {name!r}; known: {list(cls.PRESET_BUDGETS)}")


def upstream_spec(config: SegmenterConfig) -> dict[str, Any]:
    """The parsed ``upstream`` JSON: ``{"family", "preset", "modalities", "model_config", "uri"}``."""
    try:
        spec = json.loads(config.upstream)
    except json.JSONDecodeError as err:
        raise ValueError(f"SegmenterConfig.upstream is not JSON: {err}") from None
    missing = [k for k in ("family", "preset", "modalities", "model_config") if k not in spec]
    if missing:
        raise ValueError(f"SegmenterConfig.upstream lacks {missing}")
    return spec


def describe_upstream(meta: Mapping[str, Any], uri: str) -> str:
    """The ``upstream`` JSON of a raysys model directory's meta (``raysys_model.json``) and its URI."""
    keep = {k: meta[k] for k in ("family", "preset", "modalities", "model_config")}
    return json.dumps({**keep, "uri": uri}, sort_keys=True, separators=(",", ":"))

"""Model families (pure PyTorch). ``build_model`` returns a family's inference module.

Families register here by import path so importing ``raysys.models`` stays cheap and
neither family imports the other.
"""

from __future__ import annotations

import importlib
from typing import Any, Sequence

from raysys.config import from_flat
from raysys.models.family import ModelFamily, StepContext, unwrap

DEFAULT_MODALITIES = ("t1", "t1gd", "t2", "flair")

FAMILIES: dict[str, str] = {
    "disentangle": "raysys.models.disentangle:DisentangleFamily",
    "mmhvae": "raysys.models.mmhvae:MMHVAEFamily",
    "segmenter": "raysys.models.segmenter:SegmenterFamily",
    "mmgan": "raysys.models.mmgan:MMGANFamily",
}


def get_family(name: str) -> type[ModelFamily]:
    """The ModelFamily subclass registered as ``name``."""
    if name not in FAMILIES:
        raise ValueError(f"unknown model family {name!r}; known: {sorted(FAMILIES)}")
    module_name, _, attr = FAMILIES[name].partition(":")
    return getattr(importlib.import_module(module_name), attr)


def make_config(name: str, preset: str = "tiny", overrides: dict[str, Any] | None = None) -> Any:
    """The family's typed config: the named preset with flat ``overrides`` applied."""
    family = get_family(name)
    return from_flat(family.config_cls, overrides or {}, base=family.config_cls.preset(preset))


def preset_budget(name: str, preset: str) -> dict[str, Any]:
    """The training budget a preset is sized for, as un-prefixed ``TrainConfig`` overrides
    (``{"epochs", "max_steps_per_epoch", "batch_size", "max_val_steps"}``); ``{}`` when the
    preset has none (its config class has no ``budget`` or returns nothing for it)."""
    config_cls = get_family(name).config_cls
    config_cls.preset(preset)  # an unknown preset raises here, naming the known ones
    budget = getattr(config_cls, "budget", None)
    return dict(budget(preset) or {}) if budget is not None else {}


def build_family(
    name: str, preset: str = "tiny", modalities: Sequence[str] = DEFAULT_MODALITIES, overrides: dict[str, Any] | None = None
) -> ModelFamily:
    """A ready-to-train family instance (modules built, on CPU)."""
    return get_family(name)(make_config(name, preset, overrides), modalities)


def build_model(name: str, preset: str = "tiny", modalities: Sequence[str] = DEFAULT_MODALITIES, **overrides: Any):
    """The inference module of family ``name`` (e.g. ``build_model("mmhvae", preset="paper")``)."""
    return build_family(name, preset, modalities, overrides).inference_module()


__all__ = ["DEFAULT_MODALITIES", "FAMILIES", "ModelFamily", "StepContext", "build_family", "build_model", "get_family", "make_config", "preset_budget", "unwrap"]

"""The training budget each preset of a family config is sized for (``raysys.models.preset_budget``)."""

from __future__ import annotations

from typing import ClassVar, Mapping


class PresetBudgets:
    """Mixin of a family's config class: ``PRESET_BUDGETS`` names every preset (``{}`` = no budget)
    and ``budget(preset)`` returns a copy of its un-prefixed ``TrainConfig`` overrides
    (``epochs``, ``max_steps_per_epoch``, ``batch_size`` per worker, ``max_val_steps``)."""

    PRESET_BUDGETS: ClassVar[Mapping[str, Mapping[str, int]]] = {}

    @classmethod
    def budget(cls, preset: str) -> dict[str, int]:
        if preset not in cls.PRESET_BUDGETS:
            raise ValueError(f"unknown {cls.__name__} preset {preset!r}; known: {list(cls.PRESET_BUDGETS)}")
        return dict(cls.PRESET_BUDGETS[preset])

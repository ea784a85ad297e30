"""Search spaces by family, and pinning parameters of a define-by-run space (``--fix``).

A space is a module-level function ``space(trial) -> dict | None`` in ``search_spaces/<family>.py``
(picklable: OptunaSearch ships it to the Tune driver). ``FixedSpace`` wraps one so that named
parameters take a constant value while the rest are still sampled; a pinned parameter is still
recorded in the Optuna study (a one-choice categorical), so trials stay comparable.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from typing import Any, Callable, Mapping

import optuna

from raysys.names import CONFIG_PREFIXES, MODEL_KEY, TRAIN_KEY

Space = Callable[[optuna.Trial], "dict[str, Any] | None"]


def load_space(family: str, preset: str | None = None, **bind: Any) -> tuple[Space, list[dict[str, Any]]]:
    """The family's space and the points evaluated first (``search_spaces/<family>.py``).

    ``bind`` holds study facts (``max_levels``, ``epochs``); those the space function accepts as
    keyword arguments are bound with ``functools.partial`` (picklable), as are ``paper_points``'.
    First points: for a preset that brings its own training budget (``cpu``) the preset's own
    values (``preset_points(config)``: a one-trial study then trains exactly the preset); for
    the others the paper's values.
    """
    try:
        module = importlib.import_module(f"search_spaces.{family}")
    except ModuleNotFoundError as err:
        raise ValueError(f"no search space for family {family!r} (expected search_spaces/{family}.py)") from err

    def accepted(fn: Callable) -> dict[str, Any]:
        names = inspect.signature(fn).parameters
        return {k: v for k, v in bind.items() if k in names and v is not None}

    space = module.space
    if accepted(space):
        space = functools.partial(space, **accepted(space))
    if preset is not None and hasattr(module, "preset_points"):
        from raysys.models import make_config, preset_budget

        if preset_budget(family, preset):
            config = make_config(family, preset)
            return space, [dict(p) for p in module.preset_points(config, **accepted(module.preset_points))]
    if hasattr(module, "paper_points"):
        points = module.paper_points(**accepted(module.paper_points))
    else:
        points = getattr(module, "PAPER_POINTS", [])
    return space, [dict(p) for p in points]


def _aliases(name: str) -> tuple[str, ...]:
    """A pinned key may omit the ``model.`` prefix: ``regulariser`` pins ``model.regulariser``."""
    bare = name.split(".", 1)[1] if name.startswith(CONFIG_PREFIXES) else name
    return (name, bare)


class _PinnedTrial:
    """Forwards to an Optuna trial, answering suggestions for pinned names with their constant."""

    def __init__(self, trial: Any, fixed: Mapping[str, Any]):
        self._trial = trial
        self._fixed = fixed
        self.used: set[str] = set()

    def __getattr__(self, item: str) -> Any:
        return getattr(self._trial, item)

    def _pinned(self, name: str) -> str | None:
        for alias in _aliases(name):
            if alias in self._fixed:
                return alias
        return None

    def suggest_float(self, name: str, low: float, high: float, **kwargs: Any) -> float:
        return self._suggest_number(self._trial.suggest_float, float, name, low, high, **kwargs)

    def suggest_int(self, name: str, low: int, high: int, **kwargs: Any) -> int:
        return self._suggest_number(self._trial.suggest_int, int, name, low, high, **kwargs)

    def _suggest_number(self, suggest: Any, kind: type, name: str, low: Any, high: Any, **kwargs: Any) -> Any:
        """``suggest(name, low, high)``, or the pinned value (``--fix``) as a one-choice categorical."""
        key = self._pinned(name)
        if key is None:
            return suggest(name, low, high, **kwargs)
        self.used.add(key)
        return self._trial.suggest_categorical(name, [_as_number(self._fixed[key], kind, key)])

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        key = self._pinned(name)
        if key is None:
            return self._trial.suggest_categorical(name, choices)
        self.used.add(key)
        value = self._fixed[key]
        matches = [c for c in choices if c == value or str(c) == str(value)]
        if not matches:
            raise ValueError(f"--fix {key}={value!r}: not one of the choices {list(choices)} of {name!r}")
        return self._trial.suggest_categorical(name, [matches[0]])


def _as_number(value: Any, kind: type, key: str) -> Any:
    try:
        number = kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"--fix {key}={value!r}: not a {kind.__name__}") from None
    if kind is int and float(value) != number:
        raise ValueError(f"--fix {key}={value!r}: not an integer")
    return number


class FixedSpace:
    """``space`` with the parameters in ``fixed`` pinned (picklable; use as OptunaSearch's space).

    Pinned names the space never suggests (e.g. ``train.batch_size``, or a conditional parameter
    its branch does not reach) are passed through as constants; a bare name gets ``model.``.
    """

    def __init__(self, space: Space, fixed: Mapping[str, Any] | None = None):
        if not callable(space):
            raise TypeError(f"space must be callable, got {type(space).__name__}")
        self.space = space
        self.fixed = dict(fixed or {})

    def __call__(self, trial: optuna.Trial) -> dict[str, Any] | None:
        pinned = _PinnedTrial(trial, self.fixed)
        derived = dict(self.space(pinned) or {})
        for key, value in self.fixed.items():
            if key not in pinned.used:
                derived[key if key.startswith(CONFIG_PREFIXES) else f"{MODEL_KEY}{key}"] = value
        return derived or None

    def points(self, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Paper points without the pinned names (the pinned value wins for those)."""
        pinned = {alias for key in self.fixed for alias in (key, f"{MODEL_KEY}{key}", f"{TRAIN_KEY}{key}")}
        return [{k: v for k, v in p.items() if k not in pinned} for p in points]

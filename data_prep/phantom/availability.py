"""Which modalities each subject has: independent per-modality rates, at least one kept.

SPEC (the CLI's --missing): comma-separated ``modality=rate`` pairs, rate = probability in [0, 1]
that the modality is AVAILABLE, e.g. ``t1=0.95,t1gd=0.9,t2=0.7,flair=0.5``. Modalities not named
keep their default rate; ``none`` means every modality is always available.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import numpy as np

from .contrasts import ALL_MODALITIES

DEFAULT_RATES: dict[str, float] = {"t1": 0.95, "t1gd": 0.9, "t2": 0.7, "flair": 0.5, "us": 0.5, "pet": 0.5}


def parse_missing_spec(spec: str, modalities: Sequence[str] = ALL_MODALITIES) -> dict[str, float]:
    """Parse ``"t1=0.95,flair=0.5"`` into {modality: availability rate}; ``"none"`` -> all of
    ``modalities`` at rate 1. Values are checked by ``resolve_rates``."""
    text = spec.strip()
    if text.lower() == "none":
        return {m: 1.0 for m in modalities}
    rates: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep:
            raise ValueError(f"--missing: {item!r} is not of the form modality=rate (e.g. t2=0.7)")
        try:
            rates[name] = float(value)
        except ValueError:
            raise ValueError(f"--missing: rate {value!r} for {name!r} is not a number") from None
    if not rates:
        raise ValueError(f"--missing: empty spec {spec!r}; use e.g. t1=0.95,t2=0.7 or none")
    return rates


def resolve_rates(modalities: Sequence[str], missing: Mapping[str, float] | None) -> dict[str, float]:
    """Availability rate for each selected modality (defaults overridden by ``missing``), validated."""
    given = dict(missing or {})
    for name, rate in given.items():
        if name not in ALL_MODALITIES:
            raise ValueError(f"missing: unknown modality {name!r}; known: {', '.join(ALL_MODALITIES)}")
        if not (isinstance(rate, numbers.Real) and not isinstance(rate, bool) and 0.0 <= float(rate) <= 1.0):
            raise ValueError(f"missing: rate for {name!r} must be in [0, 1], got {rate!r}")
    extra = [name for name in given if name not in modalities]
    if extra:
        raise ValueError(f"missing: rates given for {extra} which are not among the generated modalities "
                         f"{list(modalities)}")
    return {m: float(given.get(m, DEFAULT_RATES[m])) for m in modalities}


def sample_availability(rng: np.random.Generator, rates: Mapping[str, float]) -> dict[str, bool]:
    """One subject's availability: Bernoulli(rate) per modality; if none survive, keep one drawn
    with probability proportional to the rates (uniformly when all rates are 0)."""
    names = list(rates)
    p = np.array([rates[m] for m in names], dtype=np.float64)
    draws = rng.random(len(names)) < p
    if not draws.any():
        weights = p / p.sum() if p.sum() > 0 else np.full(len(names), 1.0 / len(names))
        draws[rng.choice(len(names), p=weights)] = True
    return dict(zip(names, map(bool, draws)))

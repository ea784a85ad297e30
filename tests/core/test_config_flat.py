"""raysys.config: typed dataclass configs <-> flat dicts (what Tune and MLflow log)."""

from __future__ import annotations

import dataclasses
from typing import Literal, Optional

import pytest

from raysys.config import ConfigError, from_flat, parse_overrides, to_flat


@dataclasses.dataclass(frozen=True)
class Inner:
    rate: float = 1e-3
    widths: tuple[int, ...] = (8, 16)


@dataclasses.dataclass(frozen=True)
class Outer:
    name: str = "a"
    steps: int = 3
    on: bool = False
    mode: Literal["poe", "average"] = "poe"
    limit: Optional[float] = None
    inner: Inner = dataclasses.field(default_factory=Inner)


def test_round_trip_is_identity():
    config = Outer(name="b", steps=7, on=True, mode="average", limit=2.5, inner=Inner(rate=0.5, widths=(1, 2, 3)))
    flat = to_flat(config)
    assert flat == {
        "name": "b", "steps": 7, "on": True, "mode": "average", "limit": 2.5,
        "inner.rate": 0.5, "inner.widths": (1, 2, 3),
    }
    assert from_flat(Outer, flat) == config


def test_strings_from_cli_or_mlflow_are_coerced_by_type():
    flat = {"steps": "12", "on": "true", "mode": "average", "limit": "None", "inner.rate": "1e-4", "inner.widths": "(4, 5)"}
    config = from_flat(Outer, flat)
    assert config.steps == 12 and config.on is True and config.limit is None
    assert config.inner.rate == pytest.approx(1e-4) and config.inner.widths == (4, 5)


def test_stringified_flat_dict_round_trips():
    config = Outer(steps=4, limit=0.25, inner=Inner(widths=(3,)))
    as_strings = {k: str(v) for k, v in to_flat(config).items()}
    assert from_flat(Outer, as_strings) == config


def test_base_keeps_unset_fields():
    base = Outer(name="preset", steps=99)
    assert from_flat(Outer, {"on": True}, base=base) == dataclasses.replace(base, on=True)


@pytest.mark.parametrize(
    "flat, fragment",
    [
        ({"nope": 1}, "unknown config key 'nope'"),
        ({"inner.nope": 1}, "unknown config key 'nope'"),
        ({"steps": "1.5"}, "'steps'"),
        ({"on": "maybe"}, "'on'"),
        ({"mode": "concat"}, "'mode'"),
        ({"inner": 3}, "nested config"),
    ],
)
def test_bad_keys_and_values_name_the_key(flat, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        from_flat(Outer, flat)


def test_parse_overrides():
    assert parse_overrides(["a.b=3", "c = x"]) == {"a.b": "3", "c": "x"}
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["novalue"])

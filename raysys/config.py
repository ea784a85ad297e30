"""Typed configs that round-trip to the flat ``{"a.b": value}`` dicts Tune and MLflow log.

Every config in raysys is a (possibly nested) dataclass. ``to_flat`` turns it into a flat
dict of scalars/strings/tuples; ``from_flat`` rebuilds it, coercing strings (from the command
line or MLflow params) to the field's declared type and refusing unknown keys by name.
"""

from __future__ import annotations

import ast
import dataclasses
import typing
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config key or value is invalid; the message names the key."""


def to_flat(config: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten a dataclass into ``{"field.subfield": value}``; tuples/lists stay as tuples."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"to_flat expects a dataclass instance, got {type(config).__name__}")
    flat: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        key = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(value):
            flat.update(to_flat(value, prefix=f"{key}."))
        elif isinstance(value, list):
            flat[key] = tuple(value)
        else:
            flat[key] = value
    return flat


def from_flat(cls: type[T], flat: Mapping[str, Any], base: T | None = None) -> T:
    """Build ``cls`` from a flat dict, starting from ``base`` (or the defaults).

    Unknown keys raise ``ConfigError`` naming them; string values are parsed to the
    field's type, so ``{"lambda_kl": "1e-3"}`` from ``--set`` or MLflow works.
    """
    base = base if base is not None else cls()
    nested: dict[str, dict[str, Any]] = {}
    direct: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key, value in flat.items():
        head, _, rest = key.partition(".")
        if head not in fields:
            raise ConfigError(f"unknown config key {key!r} for {cls.__name__}; known: {sorted(fields)}")
        if rest:
            if not dataclasses.is_dataclass(hints[head]):
                raise ConfigError(f"config key {key!r}: {head!r} is not a nested config")
            nested.setdefault(head, {})[rest] = value
        else:
            if dataclasses.is_dataclass(hints[head]):
                raise ConfigError(f"config key {key!r} is a nested config; set its fields as {key}.<name>")
            direct[head] = coerce(value, hints[head], key)
    for head, sub in nested.items():
        direct[head] = from_flat(hints[head], sub, base=getattr(base, head))
    try:
        return dataclasses.replace(base, **direct)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{cls.__name__}: {err}") from err


def split_flat(flat: Mapping[str, Any], bare: str | None = "model") -> tuple[dict[str, Any], dict[str, Any]]:
    """``{"train.x": 1, "model.y": 2}`` -> ``({"x": 1}, {"y": 2})``: (train fields, model fields).

    ``bare`` says where a key without a prefix goes: ``"model"`` (a ``--set``/``--fix`` key may
    omit ``model.``), ``"train"``, or ``None`` to refuse it with a ``ConfigError``. The one rule
    for every flat dict raysys reads (Tune params, checkpoints, MLflow params, CLI overrides).
    """
    from raysys.names import MODEL_KEY, TRAIN_KEY

    train: dict[str, Any] = {}
    model: dict[str, Any] = {}
    for key, value in flat.items():
        if key.startswith(TRAIN_KEY):
            train[key[len(TRAIN_KEY):]] = value
        elif key.startswith(MODEL_KEY):
            model[key[len(MODEL_KEY):]] = value
        elif bare == "model":
            model[key] = value
        elif bare == "train":
            train[key] = value
        else:
            raise ConfigError(f"config key {key!r} has neither the 'train.' nor the 'model.' prefix")
    return train, model


def plain_values(value: Any) -> Any:
    """Config values as JSON- and ``weights_only``-safe builtins (tuples -> lists, objects -> str)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (tuple, list)):
        return [plain_values(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain_values(v) for k, v in value.items()}
    return str(value)


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """``["a.b=3", "c=x"]`` -> ``{"a.b": "3", "c": "x"}`` (values coerced later by type)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {pair!r} is not of the form key=value")
        out[key.strip()] = value.strip()
    return out


def coerce(value: Any, annotation: Any, key: str) -> Any:
    """Parse ``value`` into ``annotation`` (bool/int/float/str/Literal/Optional/tuple)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"config key {key!r}: cannot read {value!r} as {annotation}")
    if origin is typing.Literal:
        for arg in args:
            if value == arg or (isinstance(value, str) and str(arg) == value):
                return arg
        raise ConfigError(f"config key {key!r}: {value!r} is not one of {list(args)}")
    if origin in (tuple, list):
        if isinstance(value, str):
            text = value.strip()
            parsed = ast.literal_eval(text) if text[:1] and text[:1] in "([" else [v.strip() for v in text.split(",") if v.strip()]
            value = parsed
        if not isinstance(value, (tuple, list)):
            value = (value,)
        item_type = args[0] if args else Any
        return tuple(coerce(v, item_type, key) for v in value) if item_type is not Any else tuple(value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"config key {key!r}: {value!r} is not a boolean")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"config key {key!r}: {value!r} is not an integer")
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config key {key!r}: {value!r} is not an integer") from None
        if not as_float.is_integer():
            raise ConfigError(f"config key {key!r}: {value!r} is not an integer")
        return int(as_float)
    if annotation is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config key {key!r}: {value!r} is not a number") from None
    if annotation is str:
        return str(value)
    return value

"""The registered-model format: a directory that rebuilds the inference module from source code.

    raysys_model.json   {"format_version", "family", "preset", "modalities", "model_config" (flat
                        family config), "source" (where the weights came from), and, when
                        known, "training": {"store_id", "fold", "data", "train_subjects",
                        "val_subjects", "preprocessing"} (what the model saw; ``raysys.evaluate``
                        refuses to score it on those subjects; "preprocessing" is how the
                        store made its slices, see ``preprocessing_record``, which
                        ``raysys.predict`` repeats on new NIfTI files). Older directories lack
                        "training" or its "preprocessing".}
    weights.pt          the inference module's state_dict (torch.save; loads with weights_only=True)

No pickled code and no traced graph: the module is rebuilt with
``raysys.models.build_model(family, preset, modalities, **model_config)``, so a model trained
at one image size loads for another configuration too (torch.export would fix the input shape).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from raysys.config import plain_values, split_flat

FORMAT_VERSION = 1
META_FILE = "raysys_model.json"
WEIGHTS_FILE = "weights.pt"


class RegistryError(RuntimeError):
    """A model directory, URI or registered version is missing or malformed (message names it)."""


def save_model_dir(
    directory: str | Path,
    family: str,
    preset: str,
    modalities: list[str] | tuple[str, ...],
    model_config: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
    source: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
) -> Path:
    """Write the format into ``directory`` (created; files written atomically).

    ``training``: what the model was trained on, e.g. ``{"store_id", "fold", "train_subjects",
    "val_subjects"}`` (see ``training_info``); omitted from the meta when None.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {
        "format_version": FORMAT_VERSION,
        "family": family,
        "preset": preset,
        "modalities": list(modalities),
        "model_config": plain_values(split_flat(model_config, bare="model")[1]),
        "source": plain_values(dict(source or {})),
    }
    if training is not None:
        meta["training"] = plain_values(dict(training))
    tmp = directory / (WEIGHTS_FILE + ".tmp")
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, tmp)
    os.replace(tmp, directory / WEIGHTS_FILE)
    (directory / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
    return directory


def save_from_checkpoint(checkpoint_dir: str | Path, directory: str | Path, source: Mapping[str, Any] | None = None) -> Path:
    """Extract the inference module of a ``raysys.train`` checkpoint into the format."""
    from raysys.models import build_family
    from raysys.train.checkpoint import load_state

    state = load_state(checkpoint_dir)
    _, overrides = split_flat(state["model_config"], bare="model")
    train_config, _ = split_flat(state["train_config"], bare="train")
    preset = str(train_config.get("preset", "tiny"))
    family = build_family(state["family"], preset, list(state["modalities"]), overrides)
    family.load_state_dict({"modules": state["family_state"]["modules"]})
    module = family.inference_module()
    info = {"checkpoint": str(checkpoint_dir), "epoch": int(state["epoch"]), **dict(source or {})}
    training = training_info(train_config, store_id=info.get("store_id"))
    return save_model_dir(directory, state["family"], preset, list(state["modalities"]), overrides, module.state_dict(), info,
                          training=training)


def preprocessing_record(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """How a store made its slices, from its root attrs (CONTRACTS section 2): ``{"size": [H, W],
    "slices": "auto" | "a:b", "normalise", "value_range": [lo, hi], "modalities" (store order),
    "dtype", "converter_version"}``. The conversion's own arguments win over the derived attrs
    (they are what ``data_prep.convert`` was called with). Raises ``KeyError`` naming what is missing."""
    arguments = dict(attrs.get("arguments") or {})

    def given(argument: str, attr: str):
        return arguments[argument] if argument in arguments else attrs[attr]

    return {
        "size": [int(v) for v in given("size", "size")],
        "slices": str(arguments.get("slices", "auto")),
        "normalise": str(given("normalise", "normalisation")),
        "value_range": [float(v) for v in attrs["value_range"]],
        "modalities": [str(m) for m in attrs["modalities"]],
        "dtype": str(given("dtype", "dtype")),
        "converter_version": str(given("converter_version", "converter_version")),
    }


def training_info(train_config: Mapping[str, Any], store_id: str | None = None) -> dict[str, Any] | None:
    """``{"data", "fold", "store_id", "train_subjects", "val_subjects", "preprocessing"}`` of a
    checkpoint's train config (``preprocessing``: ``preprocessing_record`` of the store's attrs;
    the subjects those the run used: ``train.modalities`` and ``train.training_subjects`` applied).

    The subjects and store id are read from the store named by ``data`` (the training split
    convention of ``Store.split_subjects``); when that store cannot be opened here, only what is
    known is recorded (``store_id`` from the caller, e.g. the MLflow param ``data.store_id``).
    None when the train config names no store.
    """
    train_config, _ = split_flat(train_config, bare="train")  # checkpoints of any age: keys with or without "train."
    data = train_config.get("data")
    fold = int(train_config.get("fold", 0))
    if not data:
        return None
    info: dict[str, Any] = {"data": str(data), "fold": fold, "store_id": store_id}
    try:
        from raysys.data import open_store

        from raysys.data.selection import split_subjects
        from raysys.train.config import TrainConfig, run_modalities, train_config_from_flat

        store = open_store(str(data))
        info["store_id"] = store.store_id
        known = {k: v for k, v in train_config.items() if k in TrainConfig.__dataclass_fields__}
        run = train_config_from_flat(known)
        modalities = run_modalities(run, store.modalities)
        complete = run.training_subjects == "complete"
        # the subjects the run really used (train.modalities / train.training_subjects applied)
        info["train_subjects"] = [store.subjects[i] for i in split_subjects(store, "train", fold, modalities, complete)]
        info["val_subjects"] = [store.subjects[i] for i in split_subjects(store, "val", fold, modalities)]
        info["inputs"] = run.inputs  # "raw": the model encodes the store's raw images (harmonisation)
        info["preprocessing"] = preprocessing_record(store.attrs)
    except Exception:  # the store is not reachable from here: keep what is known
        pass
    return info


def find_model_dir(root: str | Path) -> Path:
    """The directory holding ``raysys_model.json`` under ``root`` (a downloaded MLflow model)."""
    root = Path(root)
    if (root / META_FILE).is_file():
        return root
    found = sorted(root.rglob(META_FILE))
    if not found:
        raise RegistryError(f"no {META_FILE} under {root}: not a raysys model")
    return found[0].parent


def read_model_dir(directory: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, Any], nn.Module]:
    """(meta, inference module in eval mode) from a model directory."""
    directory = find_model_dir(directory)
    meta = json.loads((directory / META_FILE).read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise RegistryError(f"{directory / META_FILE}: format_version {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
    weights = torch.load(directory / WEIGHTS_FILE, map_location=device, weights_only=True)
    return meta, build_module(meta, weights, device)


def build_module(meta: Mapping[str, Any], weights: Mapping[str, torch.Tensor], device: str | torch.device = "cpu") -> nn.Module:
    """The inference module of a model's meta and state_dict, in eval mode on ``device`` (e.g. in
    a Ray actor that got both from the driver, without access to the registry)."""
    from raysys.models import build_model

    module = build_model(meta["family"], meta["preset"], meta["modalities"], **meta["model_config"])
    module.load_state_dict(weights)
    return module.to(device).eval()

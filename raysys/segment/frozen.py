"""The frozen parts of a mode, prepared on the driver: the upstream model (a registered model
resolved to its directory) and the cohort-mean images of the training split.

They reach the Ray workers as ONE file of tensors, ``<storage>/frozen/<run name>.pt``: the
storage is the place every worker already reads and writes (a path shared by all nodes or an
fsspec URL), so a worker on another node finds it, while a driver-local temp dir would not exist
there. The segmenter's config gets its URL (``frozen_parts``) and the upstream's description
(``upstream``); the family loads the file once when it is built, and from then on the tensors are
part of the segmenter's own state (checkpoints, registered ``weights.pt``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from raysys.config import ConfigError
from raysys.models.segmenter import UPSTREAM_FAMILY, SegmenterModel, describe_upstream
from raysys.segment.variants import UPSTREAM_FLAG


def resolve_upstream(mode: str, uri: str, tracking_uri: str, dst: str | Path) -> tuple[Path, str]:
    """(model directory, URI to record) of the upstream model of ``mode`` named by ``uri``: a
    ``models:/``/``runs:/`` URI (downloaded into ``dst``) or a local model directory.
    ``ConfigError`` (one line naming the flag and the URI) when it is not registered."""
    from raysys.registry import RegistryError, fetch_model_dir
    from raysys.registry.format import find_model_dir, read_model_dir

    flag, family = UPSTREAM_FLAG[mode], UPSTREAM_FAMILY[mode]
    try:
        if os.path.isdir(uri):
            directory, recorded = find_model_dir(uri), str(Path(uri).resolve())
        elif uri.startswith(("models:/", "runs:/")):
            directory, recorded = fetch_model_dir(uri, dst, tracking_uri=tracking_uri), pinned_uri(uri, tracking_uri)
        else:
            raise ConfigError(f"{flag} {uri}: neither a model directory nor a models:/ or runs:/ URI")
        meta, _ = read_model_dir(directory)
    except RegistryError as err:
        reason = " ".join(str(err).split())
        raise ConfigError(f"{flag} {uri}: no such {family} model in {tracking_uri} ({reason}); input mode {mode} needs one: "
                          f"register one (python jobs/tune_{family}.py ...) or pass {flag} URI") from None
    if meta["family"] != family:
        raise ConfigError(f"{flag} {uri}: a {meta['family']!r} model; input mode {mode} needs a {family!r} model")
    return directory, recorded


def pinned_uri(uri: str, tracking_uri: str) -> str:
    """``models:/name@alias`` -> ``models:/name/<version it points to now>`` (what was used)."""
    if not uri.startswith("models:/") or "@" not in uri:
        return uri
    from mlflow import MlflowClient

    from raysys.registry import registered_version

    name, version = registered_version(MlflowClient(tracking_uri, registry_uri=tracking_uri), uri)
    return f"models:/{name}/{version}"


def cohort_means(store: Any, fold: int) -> tuple[np.ndarray, int]:
    """[M, bins, H, W] cohort-mean images of the training split per relative-position bin
    (``raysys.evaluate.baselines.MeanBaseline``; a modality no training subject has stays 0)."""
    from raysys.evaluate.baselines import MeanBaseline

    baseline = MeanBaseline.fit(store, store.split_subjects("train", fold))
    h, w = store.size
    zeros = np.zeros((baseline.bins, h, w), dtype=np.float32)
    return np.stack([baseline.means.get(m, zeros) for m in store.modalities]), baseline.bins


def mode_overrides(mode: str, upstream: tuple[Path, str] | None, bins: int) -> dict[str, Any]:
    """The model overrides that describe ``mode``'s frozen parts (no tensors yet)."""
    overrides: dict[str, Any] = {"input_mode": mode}
    if upstream is not None:
        from raysys.registry.format import read_model_dir

        meta, _ = read_model_dir(upstream[0])
        overrides["upstream"] = describe_upstream(meta, upstream[1])
    if mode == "standard_avg":
        overrides["position_bins"] = bins
    return overrides


def frozen_tensors(model: SegmenterModel, upstream_dir: Path | None, means: np.ndarray | None) -> dict[str, torch.Tensor]:
    """``model``'s frozen state filled in: the upstream weights and/or the cohort means."""
    if upstream_dir is not None:
        from raysys.registry.format import read_model_dir

        _, module = read_model_dir(upstream_dir)
        model.upstream.load_state_dict(module.state_dict())
    if means is not None and hasattr(model, "cohort_mean"):
        model.cohort_mean.copy_(torch.from_numpy(means))
    return model.frozen_state_dict()


def write_frozen_parts(url: str, tensors: Mapping[str, torch.Tensor]) -> str:
    """Save ``tensors`` at ``url`` (a local path or fsspec URL); returns ``url``."""
    import fsspec

    from raysys.urls import local_path

    path = local_path(url)
    if path is not None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        torch.save(dict(tensors), tmp)
        os.replace(tmp, path)
        return path
    with fsspec.open(url, "wb") as handle:
        torch.save(dict(tensors), handle)
    return url


def frozen_parts_url(storage: str, run_name: str) -> str:
    return f"{storage.rstrip('/')}/frozen/{run_name}.pt"

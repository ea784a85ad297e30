"""Load registered raysys models: ``raysys.registry.load("models:/mmhvae@champion")``.

Returns a ready inference object (``raysys.registry.inference``): ``MMHVAEInference.synthesise``,
``DisentangleInference.anatomy / modality / fused_anatomy / cross_synthesis`` or
``SegmenterInference.segment``. ``fetch_model_dir`` downloads a registered model's directory. The model is
rebuilt from source and its weights load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from raysys.registry.format import RegistryError, find_model_dir, read_model_dir, save_from_checkpoint, save_model_dir
from raysys.registry.inference import DisentangleInference, Inference, MMHVAEInference, SegmenterInference, wrap

DEFAULT_ALIAS = "champion"


def model_uri(name_or_uri: str, alias: str | None = None, version: int | str | None = None) -> str:
    """``models:/...`` URI for a name (+ alias or version; default alias ``champion``)."""
    if name_or_uri.startswith("models:/"):
        if alias is not None or version is not None:
            raise ValueError(f"pass alias/version only with a model name, not with the URI {name_or_uri!r}")
        return name_or_uri
    if alias is not None and version is not None:
        raise ValueError("pass either alias or version, not both")
    if version is not None:
        return f"models:/{name_or_uri}/{version}"
    return f"models:/{name_or_uri}@{alias or DEFAULT_ALIAS}"


def load(
    name_or_uri: str,
    alias: str | None = None,
    version: int | str | None = None,
    *,
    tracking_uri: str | None = None,
    device: str | torch.device = "cpu",
) -> Inference:
    """An inference object for a registered model, a ``runs:/`` URI or a local model directory.

    ``load("models:/mmhvae@champion")``, ``load("mmhvae", alias="champion")``,
    ``load("disentangle", version=3)``, ``load("/path/to/model_dir")``. The registry is the
    MLflow tracking server of ``tracking_uri`` (default ``MLFLOW_TRACKING_URI``).
    """
    if os.path.isdir(name_or_uri):
        meta, module = read_model_dir(name_or_uri, device)
        return wrap(module, meta, device)
    uri = name_or_uri if name_or_uri.startswith("runs:/") else model_uri(name_or_uri, alias, version)
    with tempfile.TemporaryDirectory(prefix="raysys-model-") as tmp:
        meta, module = read_model_dir(fetch_model_dir(uri, tmp, tracking_uri=tracking_uri), device)
    meta["uri"] = uri
    return wrap(module, meta, device)


def fetch_model_dir(uri: str, dst: str | Path, *, tracking_uri: str | None = None) -> Path:
    """Download the raysys model directory of a ``models:/`` or ``runs:/`` URI into ``dst``;
    returns the directory holding ``raysys_model.json``. ``RegistryError`` (naming the URI and the
    tracking URI) when it is not there."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    try:
        source = uri if uri.startswith("runs:/") else _version_download_uri(uri, tracking_uri)
        local = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(dst), tracking_uri=tracking_uri)
    except MlflowException as err:
        raise RegistryError(f"cannot fetch {uri} from {tracking_uri or 'the default tracking URI'}: {err.message}") from err
    return find_model_dir(Path(local))


def load_model_flag(uri: str, tracking_uri: str | None, device: str | torch.device = "cpu") -> Inference:
    """``load`` for a job's model flag: a model directory, or a ``models:/`` / ``runs:/`` URI with a
    tracking URI. Every failure is a ``RegistryError`` with one line naming ``uri``."""
    if not os.path.isdir(uri):
        if not uri.startswith(("models:/", "runs:/")):
            raise RegistryError(f"model {uri!r} is neither a model directory nor a models:/ or runs:/ URI")
        if not tracking_uri:
            raise RegistryError(f"model {uri}: a registry URI needs --tracking-uri (or MLFLOW_TRACKING_URI)")
    try:
        return load(uri, tracking_uri=tracking_uri, device=device)
    except RegistryError:
        raise
    except OSError as err:
        raise RegistryError(f"cannot load model {uri}: {err}") from err


def registered_version(client, uri: str) -> tuple[str, str]:
    """(name, version) of ``models:/name@alias`` or ``models:/name/N`` in ``client``'s registry."""
    ref = uri[len("models:/"):].strip("/")
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return name, str(client.get_model_version_by_alias(name, alias).version)
    name, _, version = ref.partition("/")
    if not version.isdigit():
        raise RegistryError(f"model URI {uri!r} must be models:/<name>@<alias> or models:/<name>/<version>")
    return name, version


def _version_download_uri(uri: str, tracking_uri: str | None) -> str:
    """Resolve ``models:/name@alias`` or ``models:/name/version`` against ``tracking_uri``'s registry.

    (MLflow's own ``models:/`` resolution reads the process-global registry URI; this does not.)
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    return client.get_model_version_download_uri(*registered_version(client, uri))


__all__ = ["DisentangleInference", "MMHVAEInference", "RegistryError", "SegmenterInference", "fetch_model_dir", "load", "load_model_flag", "model_uri", "registered_version", "save_from_checkpoint", "save_model_dir"]

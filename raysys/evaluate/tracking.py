"""Record an evaluation in MLflow (only when a tracking URI is given): one run in experiment
``raysys-evaluation`` with the output files as artifacts, summary metrics, and, when the model
URI names a registered version (``models:/name/N`` or ``models:/name@alias``), test-score tags
on that model version.

Run tags: ``raysys.model_uri``, ``raysys.model_name`` / ``raysys.model_version`` (registered
models), ``raysys.split``, ``raysys.fold``, ``raysys.store_id``, ``raysys.family``.
Metrics (``<split>`` = test or val; ``<method>`` suffix absent for the model, else
``baseline_zeros`` / ``baseline_mean`` / ``baseline_copy`` / ``model_2`` ...):
``<split>/ssim_synthesis/<target>[/<method>]``, ``<split>/psnr_synthesis/<target>[/<method>]``,
``<split>/ssim_self/<target>[/<method>]``, ``<split>/psnr_self/<target>[/<method>]``,
``<split>/ssim_synthesis_mean``, ``<split>/beats_baselines`` (0/1), ``<split>/left_out_cells``
and the disentanglement scores ``<split>/<name>`` of a disentangle model.
Model-version tags: ``raysys.<split>.ssim_synthesis_mean``, ``raysys.<split>.psnr_synthesis_mean``,
``raysys.<split>.beats_baselines``, ``raysys.<split>.store_id``, ``raysys.<split>.fold``,
``raysys.<split>.evaluation_run``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from mlflow import MlflowClient
from mlflow.entities import Metric

from raysys.names import (
    SPLIT_SCORE_TAG,
    TAG_FAMILY,
    TAG_FOLD,
    TAG_MODEL_NAME,
    TAG_MODEL_URI,
    TAG_MODEL_VERSION,
    TAG_SPLIT,
    TAG_STORE,
)
from raysys.tracking import get_or_create_experiment, resolve_tracking_uri

EXPERIMENT = "raysys-evaluation"


def _metric_suffix(method: str, model: str) -> str:
    return "" if method == model else "/" + method.replace(":", "_")


def summary_metrics(summary: Mapping[str, Any], split: str, model: str = "model") -> dict[str, float]:
    """The flat metrics of a summary (module docstring)."""
    out: dict[str, float] = {}
    for target, entry in summary["targets"].items():
        for kind in ("synthesis", "self"):
            for method, v in entry.get(kind, {}).items():
                suffix = _metric_suffix(method, model)
                out[f"{split}/ssim_{kind}/{target}{suffix}"] = v["ssim"]
                out[f"{split}/psnr_{kind}/{target}{suffix}"] = v["psnr"]
    if summary.get("ssim_synthesis_mean") is not None:
        out[f"{split}/ssim_synthesis_mean"] = summary["ssim_synthesis_mean"]
    out[f"{split}/beats_baselines"] = float(bool(summary["beats_baselines"]))
    out[f"{split}/left_out_cells"] = float(summary.get("left_out", 0))
    for name, value in (summary.get("disentanglement") or {}).get(model, {}).items():
        out[f"{split}/{name}"] = float(value)
    return out


def registered_version(client: MlflowClient, uri: str) -> tuple[str, str] | None:
    """(name, version) of a ``models:/name/N`` or ``models:/name@alias`` URI; None otherwise."""
    from raysys.registry import RegistryError
    from raysys.registry import registered_version as resolve

    if not uri.startswith("models:/"):
        return None
    try:
        return resolve(client, uri)
    except RegistryError:
        return None


def log_evaluation(tracking_uri: str, out: str | Path, summary: Mapping[str, Any], model_uri: str, split: str,
                   fold: int, store_id: str, model: str = "model") -> str:
    """Log the evaluation run (files in ``out`` as artifacts); returns its run id."""
    uri = resolve_tracking_uri(tracking_uri)
    client = MlflowClient(uri, registry_uri=uri)
    experiment = get_or_create_experiment(client, EXPERIMENT, uri)
    tags = {TAG_MODEL_URI: model_uri, TAG_SPLIT: split, TAG_FOLD: str(fold),
            TAG_STORE: store_id, TAG_FAMILY: str(summary.get("family", ""))}
    version = registered_version(client, model_uri)
    if version is not None:
        tags.update({TAG_MODEL_NAME: version[0], TAG_MODEL_VERSION: version[1]})
    run = client.create_run(experiment, tags=tags, run_name=f"evaluate {model_uri} {split} fold {fold}")
    run_id = run.info.run_id
    try:
        client.log_batch(run_id, metrics=[Metric(k, float(v), 0, 0) for k, v in summary_metrics(summary, split, model).items()])
        client.log_artifacts(run_id, str(out))
        if version is not None:
            name, number = version
            values = {"ssim_synthesis_mean": summary.get("ssim_synthesis_mean"),
                      "psnr_synthesis_mean": summary.get("psnr_synthesis_mean"),
                      "beats_baselines": bool(summary["beats_baselines"]), "store_id": store_id, "fold": fold,
                      "evaluation_run": run_id}
            for key, value in values.items():
                client.set_model_version_tag(name, number, SPLIT_SCORE_TAG.format(split=split, key=key), str(value))
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    return run_id

"""Publish a checkpoint to the Model Registry and move the ``champion`` alias only on improvement.

Called by a study (``raysys.tune``) for its best trial; nothing here depends on Tune.

Rule: a new version becomes ``champion`` when there is no champion yet, or when the current
champion was scored on the SAME objective (tag ``raysys.objective``) and the SAME data store
(tag ``raysys.store_id``) and the new value is strictly better in the objective's direction.
A champion scored on another objective or store is not comparable: the alias stays, and the
new version is registered without it (the reason is a tag on the version).

No half-written entries: the model files are logged before the version is created, and if
anything fails after ``create_model_version`` that version is deleted again.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from raysys.names import TAG_CHAMPION_DECISION, TAG_OBJECTIVE, TAG_OBJECTIVE_MODE, TAG_OBJECTIVE_VALUE, TAG_STORE

CHAMPION = "champion"
MODEL_ARTIFACT = "model"


@dataclasses.dataclass(frozen=True)
class Publication:
    name: str
    version: str
    is_champion: bool
    previous_champion: str | None
    reason: str


def should_promote(current: Mapping[str, str] | None, objective: str, value: float, mode: str, store_id: str) -> tuple[bool, str]:
    """(promote?, why) given the current champion's tags (None: no champion yet)."""
    if current is None:
        return True, "no champion yet"
    if current.get(TAG_OBJECTIVE) != objective or current.get(TAG_STORE) != store_id:
        return False, (
            f"champion was scored on {current.get(TAG_OBJECTIVE)!r} / store {current.get(TAG_STORE)!r}, "
            f"not comparable with {objective!r} / store {store_id!r}"
        )
    old = float(current.get(TAG_OBJECTIVE_VALUE, "nan"))
    if not math.isfinite(old):
        return True, "champion has no finite objective value"
    better = value > old if mode == "max" else value < old
    return better, f"{objective} {value:.6g} {'beats' if better else 'does not beat'} champion's {old:.6g} ({mode})"


def _model_source(client: MlflowClient, run_id: str, model_dir: Path) -> str:
    """Log the model directory under the run; returns its artifact URI."""
    client.log_artifacts(run_id, str(model_dir), MODEL_ARTIFACT)
    return f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{MODEL_ARTIFACT}"


def write_mlflow_model(checkpoint_dir: str | Path, out: Path, source: Mapping[str, Any]) -> Path:
    """An MLflow pyfunc model whose artifact ``raysys`` is the raysys format of the checkpoint."""
    import mlflow.pyfunc

    from raysys.registry.format import save_from_checkpoint
    import raysys.registry.pyfunc_model as entry

    raysys_dir = save_from_checkpoint(checkpoint_dir, out / "raysys_src", source)
    with warnings.catch_warnings():  # predict takes a dict of arrays: no MLflow signature to infer
        warnings.simplefilter("ignore", UserWarning)
        mlflow.pyfunc.save_model(
            str(out / MODEL_ARTIFACT),
            python_model=entry.__file__,  # a model from code: nothing pickled
            artifacts={"raysys": str(raysys_dir)},
            pip_requirements=["raysys"],
        )
    return out / MODEL_ARTIFACT


def publish(
    *,
    tracking_uri: str,
    family: str,
    checkpoint_dir: str | Path,
    objective_name: str,
    objective_value: float,
    mode: str,
    store_id: str,
    run_id: str,
    tags: Mapping[str, str] | None = None,
    before_alias: Callable[[str], None] | None = None,
) -> Publication:
    """Log ``checkpoint_dir`` as an MLflow model under ``run_id``, register it as ``family`` and
    move ``champion`` if it wins. ``before_alias(version)`` runs just before the alias decision
    (a hook for tests of the clean-up path)."""
    if not math.isfinite(objective_value):
        raise ValueError(f"objective_value must be finite to register a model, got {objective_value}")
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    with tempfile.TemporaryDirectory(prefix="raysys-publish-") as tmp:
        model_dir = write_mlflow_model(checkpoint_dir, Path(tmp), {"run_id": run_id, **dict(tags or {})})
        source = _model_source(client, run_id, model_dir)
    try:
        client.create_registered_model(family, description=f"raysys {family} models registered by Tune studies")
    except MlflowException as err:
        if "RESOURCE_ALREADY_EXISTS" not in str(err.error_code):
            raise
    version_tags = {
        TAG_OBJECTIVE: objective_name,
        TAG_OBJECTIVE_VALUE: repr(float(objective_value)),
        TAG_OBJECTIVE_MODE: mode,
        TAG_STORE: store_id,
        **{k: str(v) for k, v in (tags or {}).items()},
    }
    version = client.create_model_version(family, source, run_id=run_id, tags=version_tags).version
    try:
        if before_alias is not None:
            before_alias(str(version))
        try:
            current = client.get_model_version_by_alias(family, CHAMPION)
        except MlflowException:
            current = None
        promote, reason = should_promote(current.tags if current else None, objective_name, objective_value, mode, store_id)
        client.set_model_version_tag(family, str(version), TAG_CHAMPION_DECISION, reason)
        if promote:
            client.set_registered_model_alias(family, CHAMPION, str(version))
    except BaseException:
        client.delete_model_version(family, str(version))
        raise
    return Publication(family, str(version), promote, str(current.version) if current else None, reason)

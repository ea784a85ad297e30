"""One variant of ``jobs/segment.py``: prepare its frozen parts, train it (``raysys.train.fit``),
register it as ``segmenter`` (``raysys.registry.champion.publish``: ``champion`` moves only on
improvement of ``val/dice_mean`` on the same store) and score it on the test fold."""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path
from typing import Any, Mapping

from raysys.names import OBJECTIVE, TAG_CHECKPOINT, TAG_HIDE_PROB, TAG_INPUT_MODE, TAG_VARIANT, VAL_PREFIX
from raysys.segment.evaluation import SubjectScore, evaluate_segmenter
from raysys.segment.frozen import frozen_parts_url, frozen_tensors, write_frozen_parts
from raysys.segment.variants import Variant
from raysys.train.config import ScalingSpec, TrackingSpec, TrainConfig

FAMILY = "segmenter"
OBJECTIVE_NAME = f"{VAL_PREFIX}dice_mean"


@dataclasses.dataclass
class VariantOutcome:
    variant: Variant
    run_name: str
    mlflow_run_id: str | None
    best_objective: float | None
    checkpoint: str | None
    version: str | None  # registered version of ``segmenter`` (None: no finite objective to register)
    champion: bool
    scores: list[SubjectScore]


def prepare(variant: Variant, overrides: Mapping[str, Any], preset: str, store: Any, storage: str, run_name: str,
            upstream_dir: Path | None, means: Any) -> dict[str, Any]:
    """The model overrides of ``variant`` with its frozen parts written to the run storage."""
    from raysys.models import make_config
    from raysys.models.segmenter import SegmenterModel

    model = SegmenterModel(make_config(FAMILY, preset, dict(overrides)), store.modalities)
    tensors = frozen_tensors(model, upstream_dir, means if variant.mode == "standard_avg" else None)
    if not tensors:
        return dict(overrides)
    return {**overrides, "frozen_parts": write_frozen_parts(frozen_parts_url(storage, run_name), tensors)}


def train_and_register(variant: Variant, train: TrainConfig, overrides: Mapping[str, Any], scaling: ScalingSpec,
                       tracking: TrackingSpec, *, storage: str, run_name: str, store_id: str,
                       max_failures: int = 0) -> VariantOutcome:
    from raysys.registry.champion import publish
    from raysys.train.trainer import fit
    from raysys.tune.study_dir import local_copy

    train = dataclasses.replace(train, hide_prob=variant.hide_prob)
    tags = {TAG_INPUT_MODE: variant.mode, TAG_HIDE_PROB: str(variant.hide_prob), TAG_VARIANT: variant.label}
    tracking = dataclasses.replace(tracking, tags={**dict(tracking.tags), **tags})
    result = fit(train, dict(overrides), scaling, run_name=run_name, storage=storage, tracking=tracking,
                 max_failures=max_failures)
    summary = result.return_value or {}
    best = summary.get("best_metric")
    checkpoint = best_checkpoint(result)
    outcome = VariantOutcome(variant, run_name, summary.get("mlflow_run_id"), best,
                             checkpoint.path if checkpoint else None, None, False, [])
    if checkpoint is None or best is None or not math.isfinite(float(best)) or not outcome.mlflow_run_id:
        return outcome  # nothing to register: scored from the latest checkpoint (``scores``)
    with local_copy(checkpoint.path) as directory:
        publication = publish(
            tracking_uri=tracking.tracking_uri, family=FAMILY, checkpoint_dir=directory, objective_name=OBJECTIVE_NAME,
            objective_value=float(best), mode="max", store_id=store_id, run_id=outcome.mlflow_run_id,
            tags={**tags, TAG_CHECKPOINT: checkpoint.path},
        )
    outcome.version, outcome.champion = publication.version, publication.is_champion
    return outcome


def best_checkpoint(result: Any) -> Any:
    """The kept checkpoint with the highest finite ``objective``, else the latest (or None)."""
    scored = [(float(m.get(OBJECTIVE, math.nan)), c) for c, m in (result.best_checkpoints or [])]
    scored = [(v, c) for v, c in scored if math.isfinite(v)]
    return max(scored, key=lambda vc: vc[0])[1] if scored else result.checkpoint


def score(outcome: VariantOutcome, store: Any, fold: int, tracking_uri: str) -> list[SubjectScore]:
    """Test-fold Dice of the registered version (loaded as any user would), or of the run's
    checkpoint when nothing was registered."""
    from raysys.registry import load
    from raysys.registry.format import save_from_checkpoint
    from raysys.tune.study_dir import local_copy

    if outcome.version is not None:
        inference = load(f"models:/{FAMILY}/{outcome.version}", tracking_uri=tracking_uri)
    else:
        if outcome.checkpoint is None:
            raise RuntimeError(f"run {outcome.run_name} left no checkpoint to score")
        with local_copy(outcome.checkpoint) as directory, tempfile.TemporaryDirectory(prefix="raysys-seg-") as tmp:
            inference = load(str(save_from_checkpoint(directory, Path(tmp) / "model")))
    outcome.scores = evaluate_segmenter(inference, store, fold)
    return outcome.scores

"""The trainable of the grid: train one row's configuration with one seed, then score its last
checkpoint on the test fold with ``raysys.evaluate`` and record the scores in its MLflow run.

Training is the studies' own path (``raysys.tune.trainable``): in the trial's process with
``raysys.train.train_local`` when the trial has one worker and local storage, else a
``raysys.train.fit`` TorchTrainer. Every run trains its whole budget and the LAST checkpoint is
scored (no early stopping and no selection on validation scores: the papers train fixed epochs).
The evaluation files go to the child run's artifacts under ``evaluation/`` (``per_subject.csv``,
``summary.json``, ``table.md``, ``figure.png``) with the metrics ``test/...`` of
``raysys.evaluate.tracking.summary_metrics``; the driver reads them back from MLflow, so trials
may run on any node of a cluster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

from raysys.names import TAG_TRIAL, TAG_VARIANT
from raysys.reproduce.plan import SEED_KEY
from raysys.train import TrackingSpec, TrainConfig
from raysys.tune.trainable import TrialContext, runs_in_process, trial_configs
from raysys.urls import local_path

VARIANT_KEY = "variant"  # the grid's first axis: a run key of the plan
RUN_ID_KEY = "mlflow_run_id"  # reported to Tune: where the driver finds the evaluation
EVALUATION_DIR = "evaluation"  # artifact folder of the child run
TAG_ROWS = "raysys.rows"  # every table row the run stands for (comma-separated labels)
TAG_SEED = "raysys.seed"


@dataclasses.dataclass(frozen=True)
class GridContext:
    """What every trial of an experiment shares (picklable; ``tune.with_parameters``)."""

    trial: TrialContext
    runs: Mapping[str, Mapping[str, Any]]  # run key -> flat train.*/model.* params
    rows: Mapping[str, tuple[str, ...]]  # run key -> row labels
    eval_slices: int  # slices per test subject (0 = all)


def run_variant(config: dict[str, Any], context: GridContext) -> None:
    """Tune function trainable: ``config`` = {VARIANT_KEY: run key, "train.seed": seed}."""
    import ray.tune

    trial_id = ray.tune.get_context().get_trial_id()
    key, seed = str(config[VARIANT_KEY]), int(config[SEED_KEY])
    train, model_overrides, _ = trial_configs({**context.runs[key], SEED_KEY: seed}, context.trial)
    tags = {**context.trial.tracking.tags, TAG_TRIAL: trial_id, TAG_VARIANT: key,
            TAG_ROWS: ",".join(context.rows[key]), TAG_SEED: str(seed)}
    tracking = dataclasses.replace(context.trial.tracking, tags=tags)
    with trained(train, model_overrides, tracking, trial_id, context.trial) as (checkpoint_dir, run_id):
        summary = evaluate_into_run(checkpoint_dir, train, run_id, tracking.tracking_uri, context.eval_slices)
    ray.tune.report({RUN_ID_KEY: run_id or "",
                     "test/psnr_synthesis_mean": summary.get("psnr_synthesis_mean") or float("nan"),
                     "test/ssim_synthesis_mean": summary.get("ssim_synthesis_mean") or float("nan")})


@contextlib.contextmanager
def trained(train: TrainConfig, model_overrides: dict[str, Any], tracking: TrackingSpec, trial_id: str,
            context: TrialContext) -> Iterator[tuple[Path, str | None]]:
    """Train the whole budget; yields (a local copy of the last checkpoint, the child run id)."""
    if runs_in_process(context.scaling, context.train_storage):
        from raysys.train import train_local

        result = train_local(train, model_overrides, tracking=tracking, run_name=trial_id,
                             checkpoint_dir=Path(local_path(context.train_storage)) / trial_id)
        if result.checkpoint is None:
            raise RuntimeError(f"trial {trial_id} wrote no checkpoint")
        yield result.checkpoint, result.summary.get("mlflow_run_id")
        return
    from raysys.train import fit

    result = fit(train, model_overrides, context.scaling, run_name=trial_id, storage=context.train_storage,
                 tracking=tracking, max_failures=0)
    if result.checkpoint is None:
        raise RuntimeError(f"trial {trial_id} wrote no checkpoint")
    with result.checkpoint.as_directory() as directory:  # downloaded when the storage is remote
        yield Path(directory), (result.return_value or {}).get("mlflow_run_id")


@contextlib.contextmanager
def _no_tracking_env() -> Iterator[None]:
    """``raysys.evaluate`` records its own evaluation run when ``MLFLOW_TRACKING_URI`` is set;
    here the scores belong to the training run, so the variable is hidden for the call."""
    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved


def evaluate_into_run(checkpoint_dir: Path, train: TrainConfig, run_id: str | None, tracking_uri: str | None,
                      eval_slices: int) -> dict[str, Any]:
    """Score the checkpoint on the test fold (per-subject scores and the trivial baselines) and
    log the files and ``test/...`` metrics to ``run_id``; returns the evaluation summary."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from raysys.evaluate import evaluate
    from raysys.evaluate.tracking import summary_metrics
    from raysys.registry.format import save_from_checkpoint

    with tempfile.TemporaryDirectory(prefix="raysys-reproduce-") as tmp:
        model_dir = save_from_checkpoint(checkpoint_dir, Path(tmp) / "model")
        out = Path(tmp) / EVALUATION_DIR
        with _no_tracking_env():
            result = evaluate(str(model_dir), train.data, split="test", fold=train.fold, out=out, tracking_uri=None,
                              seed=train.seed, max_slices_per_subject=eval_slices)
        if run_id and tracking_uri:
            client = MlflowClient(tracking_uri)
            metrics = [Metric(k, float(v), 0, 0) for k, v in summary_metrics(result.summary, "test").items()]
            client.log_batch(run_id, metrics=metrics)
            client.log_artifacts(run_id, str(out), EVALUATION_DIR)
    return result.summary

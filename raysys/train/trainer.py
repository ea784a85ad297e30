"""``fit``: build a Ray ``TorchTrainer`` for ``train_loop_per_worker`` and run it (CONTRACTS section 4).

Resume semantics (Ray Train V2): the run lives at ``<storage>/<run_name>``. Calling ``fit``
again with the same ``run_name`` and ``storage`` continues from the latest checkpoint (raise
``train.epochs`` to train further); ``max_failures`` restarts a failed worker group from the
latest checkpoint within one call. Checkpoints kept: the best by ``objective`` and the latest.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Sequence

import ray.train
from ray.train.torch import TorchConfig, TorchTrainer

from raysys.models import FAMILIES, get_family, make_config
from raysys.names import OBJECTIVE
from raysys.tracking import resolve_tracking_uri
from raysys.train.config import ScalingSpec, TrackingSpec, TrainConfig
from raysys.train.faults import FaultSpec
from raysys.train.loop import LoopSpec, train_loop_per_worker
from raysys.urls import absolute_url


def scaling_config(scaling: ScalingSpec) -> ray.train.ScalingConfig:
    resources = {"CPU": scaling.cpus_per_worker}
    if scaling.gpus_per_worker > 0:
        resources["GPU"] = scaling.gpus_per_worker
    return ray.train.ScalingConfig(
        num_workers=scaling.workers,
        use_gpu=scaling.gpus_per_worker > 0,
        resources_per_worker=resources if scaling.workers > 0 else None,
        placement_strategy=scaling.placement,
    )


def fit(
    train: TrainConfig,
    model_overrides: Mapping[str, Any],
    scaling: ScalingSpec,
    *,
    run_name: str,
    storage: str,
    tracking: TrackingSpec,
    callbacks: Sequence[Any] = (),
    max_failures: int = 0,
    keep_checkpoints: int | None = 1,
) -> ray.train.Result:
    """Train ``train.family`` on ``train.data`` with Ray Train; returns the Train ``Result``.

    ``result.metrics`` holds the last epoch's metrics (``epoch``, ``train/*``, ``val/*``,
    ``objective``); ``result.checkpoint`` the latest checkpoint (``state.pt`` inside);
    ``result.return_value`` rank 0's summary (``epochs_done``, ``best_metric``, ``mlflow_run_id``).
    Raises ``ray.train.TrainingFailedError`` when the run fails beyond ``max_failures``
    (e.g. a non-finite loss). ``scaling.workers == 0`` runs in this process (Train local mode).
    ``keep_checkpoints``: checkpoints kept besides the latest, best by ``objective`` first
    (None = every epoch's, e.g. for learning curves).
    """
    if not run_name or "/" in run_name:
        raise ValueError(f"run_name must be a non-empty name without '/', got {run_name!r}")
    if max_failures < -1:
        raise ValueError(f"max_failures must be >= -1 (-1 = unlimited), got {max_failures}")
    train = dataclasses.replace(train, data=absolute_url(train.data, "train.data"))
    storage = absolute_url(storage, "storage")
    if scaling.workers == 0 and "://" in storage:
        raise ValueError(f"storage={storage!r}: local mode (scaling.workers=0) needs a local storage path")
    family = get_family(train.family)
    make_config(train.family, train.preset, dict(model_overrides))  # bad overrides fail here, not in a worker
    from raysys.data import open_store

    open_store(train.data)  # an incomplete or missing store fails here, naming the URL

    fault = FaultSpec.from_env()
    spec = LoopSpec(
        train=dataclasses.asdict(train),
        model_overrides=dict(model_overrides),
        run_name=run_name,
        storage=storage,
        tracking_uri=resolve_tracking_uri(tracking.tracking_uri),
        experiment=tracking.experiment,
        parent_run_id=tracking.parent_run_id,
        tags={k: str(v) for k, v in dict(tracking.tags).items()},
        local_mode=scaling.workers == 0,
        fault=fault.to_dict() if fault else None,
        extra_params={f"scaling.{k}": v for k, v in dataclasses.asdict(scaling).items()},
        families=dict(FAMILIES),
    )
    if not storage.count("://"):
        os.makedirs(storage, exist_ok=True)
    run_config = ray.train.RunConfig(
        name=run_name,
        storage_path=storage,
        failure_config=ray.train.FailureConfig(max_failures=max_failures, controller_failure_limit=max(max_failures, 0)),
        checkpoint_config=ray.train.CheckpointConfig(
            num_to_keep=keep_checkpoints, checkpoint_score_attribute=OBJECTIVE, checkpoint_score_order=family.objective_mode
        ),
        callbacks=list(callbacks) or None,
    )
    backend = "nccl" if scaling.gpus_per_worker > 0 else "gloo"
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=dataclasses.asdict(spec),
        torch_config=TorchConfig(backend=backend),
        scaling_config=scaling_config(scaling),
        run_config=run_config,
    )
    return trainer.fit()

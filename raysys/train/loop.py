"""``train_loop_per_worker``: the Ray Train worker entry point around the shared epoch loop.

The epochs themselves are ``raysys.train.epoch_loop.run_training``; this module adds what Ray
Train brings: rank, world size and device from the Train context, DDP wrapping, the resume
checkpoint from ``ray.train.get_checkpoint()``, and ``RayReporter``, which ends every epoch with
``ray.train.report(metrics, checkpoint)`` (a barrier; rank 0's part holds ``state.pt``, every
rank adds its parameter digest).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import ray
import ray.train
import ray.train.torch
import torch
from torch import nn

from raysys.config import from_flat
from raysys.models import FAMILIES
from raysys.train import checkpoint as ckpt
from raysys.train.config import TrackingSpec, TrainConfig
from raysys.train.epoch_loop import NonFiniteLossError, Reporter, default_device, run_training
from raysys.train.faults import FaultSpec

__all__ = ["LoopSpec", "NonFiniteLossError", "RayReporter", "train_loop_per_worker"]


@dataclasses.dataclass(frozen=True)
class LoopSpec:
    """Everything the driver hands each worker (a plain dict over the wire)."""

    train: dict[str, Any]  # flat TrainConfig fields (no prefix)
    model_overrides: dict[str, Any]
    run_name: str
    storage: str
    tracking_uri: str | None = None
    experiment: str = "raysys"
    parent_run_id: str | None = None
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    local_mode: bool = False
    fault: dict[str, Any] | None = None
    extra_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    # The driver's family registry, so families registered at runtime (plugins, tests) resolve here too.
    families: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def run_dir(self) -> str:
        return os.path.join(self.storage, self.run_name)

    @property
    def tracking(self) -> TrackingSpec:
        return TrackingSpec(self.tracking_uri, self.experiment, self.parent_run_id, dict(self.tags))


class RayReporter(Reporter):
    """Epochs go to Ray Train: ``ray.train.report`` with this rank's part of the checkpoint.

    Train local mode (``spec.local_mode``: no worker group) writes checkpoints into the run's
    directory itself and resumes from the newest there.
    """

    def __init__(self, spec: LoopSpec):
        self.spec = spec
        context = ray.train.get_context()
        self.rank, self.world = context.get_world_rank(), context.get_world_size()
        self.device = default_device() if spec.local_mode else ray.train.torch.get_device()
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)  # NCCL collectives (all_gather_object too) use the current device

    def prepare_module(self, module: nn.Module, find_unused_parameters: bool) -> nn.Module:
        if self.world == 1:
            return module
        return ray.train.torch.prepare_model(
            module, move_to_device=False, parallel_strategy_kwargs={"find_unused_parameters": find_unused_parameters}
        )

    def resume_state(self) -> dict[str, Any] | None:
        if self.spec.local_mode:
            latest = ckpt.latest_checkpoint_dir(self.spec.run_dir)
            return ckpt.load_state(latest) if latest else None
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as directory:
            return ckpt.load_state(directory)

    def report(self, metrics: dict[str, Any], *, epoch: int, improved: bool,
               state: Callable[[], dict[str, Any]], digest: Callable[[], str]) -> None:
        rank_state = state() if self.rank == 0 else None
        name = ckpt.checkpoint_dir_name(epoch)
        if self.spec.local_mode:
            directory = ckpt.write_checkpoint(Path(self.spec.run_dir) / name, rank_state, self.rank, digest(), epoch)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(str(directory)))
            return
        directory = Path(tempfile.mkdtemp(prefix="raysys-ckpt-"))
        try:
            ckpt.write_checkpoint(directory, rank_state, self.rank, digest(), epoch, ray.get_runtime_context().get_node_id())
            # Ray merges every rank's directory into one checkpoint in the run's storage.
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(str(directory)), checkpoint_dir_name=name)
        finally:
            shutil.rmtree(directory, ignore_errors=True)


def train_loop_per_worker(config: dict[str, Any]) -> dict[str, Any]:
    """Ray Train worker entry point. ``config`` is ``dataclasses.asdict(LoopSpec)``.

    Returns (on every rank; Ray keeps rank 0's) a summary: epochs done, best metric, MLflow run id.
    """
    spec = LoopSpec(**config)
    FAMILIES.update(spec.families)
    reporter = RayReporter(spec)
    return run_training(
        from_flat(TrainConfig, spec.train),
        spec.model_overrides,
        reporter,
        run_name=spec.run_name,
        tracking=spec.tracking,
        extra_params=spec.extra_params,
        fault=FaultSpec(**spec.fault) if spec.fault else FaultSpec.from_env(),
        fault_marker=os.path.join(spec.run_dir, ".fault_fired"),
    )

"""``train_loop_per_worker``: the one model-agnostic training loop run by every Ray Train worker.

The loop owns devices, DDP, AMP, sharding, validation, checkpoints and MLflow; the model is
reached only through ``raysys.models.family.ModelFamily``. Per epoch, on every rank:

    set_epoch -> train steps (family.train_step) -> validation on split "val" (sum/count
    all-reduce) -> family.on_epoch_end -> rank 0 logs to MLflow -> ray.train.report(metrics,
    checkpoint) (a barrier; rank 0's checkpoint holds state.pt, every rank adds its digest)

Randomness is re-seeded at the start of every epoch from (seed, epoch, rank), so a run resumed
from the checkpoint of epoch e replays epoch e + 1 exactly as an uninterrupted run would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import ray
import ray.train
import ray.train.torch
import torch
from torch.utils.data import DataLoader

from raysys.config import from_flat
from raysys.models import FAMILIES, get_family, make_config
from raysys.models.family import ModelFamily, StepContext, unwrap
from raysys.train import checkpoint as ckpt
from raysys.train.config import TrainConfig, flat_run_config
from raysys.train.distributed import MeanAccumulator, is_distributed
from raysys.train.faults import FaultSpec, maybe_fail

OBJECTIVE = "objective"
FIGURE_BATCHES = 4  # validation batches kept for the end-of-run figures (t-SNE needs a few points)
# Model config fields copied into MLflow tags when a family's config has them.
TAG_FIELDS = ("regulariser", "regularizer", "levels", "num_levels", "fusion", "gan")


class NonFiniteLossError(FloatingPointError):
    """The family's ``loss/total`` became NaN or infinite; the run stops (a Tune trial errors)."""


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


def seed_everything(seed: int, epoch: int, rank: int) -> None:
    """Seed Python, NumPy and torch from (seed, epoch, rank): epochs replay exactly after resume."""
    value = (seed * 1_000_003 + epoch * 1009 + rank) % (2**31)
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


def autocast_factory(amp: str, device: torch.device):
    """bf16 autocast on GPU ("auto" or "bf16"), nothing on CPU or with "off"."""
    if device.type == "cuda" and amp in ("auto", "bf16"):
        return lambda: torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


@contextlib.contextmanager
def unwrapped_modules(family: ModelFamily) -> Iterator[None]:
    """Temporarily give the family its plain modules: evaluation needs no DDP collectives,
    and ranks may run different numbers of validation batches."""
    wrapped = dict(family.modules)
    family.modules = {k: unwrap(m) for k, m in wrapped.items()}
    try:
        yield
    finally:
        family.modules = wrapped


def _context_slices(model_config: Any) -> int:
    for name in ("context", "context_slices", "in_slices"):
        if hasattr(model_config, name):
            return int(getattr(model_config, name))
    return 1


def build_loaders(train: TrainConfig, model_config: Any, rank: int, world: int, device: torch.device):
    """Train loader (DistinctSubjectBatchSampler sharded by rank) and this rank's val loader."""
    from raysys.data import DistinctSubjectBatchSampler, SliceDataset

    context = _context_slices(model_config)
    train_set = SliceDataset(train.data, split="train", fold=train.fold, context=context, hide_prob=train.hide_prob, seed=train.seed)
    sampler = DistinctSubjectBatchSampler(
        train_set, train.batch_size, shuffle=True, seed=train.seed, drop_last=True, num_replicas=world, rank=rank
    )
    loader_kwargs: dict[str, Any] = {"num_workers": train.loader_workers, "pin_memory": device.type == "cuda"}
    if train.loader_workers > 0:
        # Persistent workers would keep the dataset's epoch (its random hiding) frozen.
        loader_kwargs.update(persistent_workers=train.hide_prob == 0.0, prefetch_factor=4)
    train_loader = DataLoader(train_set, batch_sampler=sampler, **loader_kwargs)
    val_set = SliceDataset(train.data, split="val", fold=train.fold, context=context, hide_prob=0.0, seed=train.seed)
    # Every validation slice exactly once over all ranks; unequal counts are fine (no collectives).
    shard = torch.utils.data.Subset(val_set, list(range(rank, len(val_set), world)))
    val_loader = DataLoader(shard, batch_size=train.batch_size, shuffle=False, **loader_kwargs)
    return train_loader, sampler, val_loader


def _steps_per_epoch(loader: DataLoader, cap: int) -> int:
    n = len(loader)
    return min(n, cap) if cap else n


def _find_resume_state(spec: LoopSpec) -> dict[str, Any] | None:
    if spec.local_mode:
        latest = ckpt.latest_checkpoint_dir(spec.run_dir)
        return ckpt.load_state(latest) if latest else None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        return ckpt.load_state(directory)


def _is_better(value: float, best: float | None, mode: str) -> bool:
    if math.isnan(value):
        return False
    if best is None or math.isnan(best):
        return True
    return value > best if mode == "max" else value < best


def run_epoch(family, loader, sampler, train: TrainConfig, epoch: int, global_step: int, device, autocast, fault, rank, world, marker):
    """Train one epoch; returns (per-rank loss accumulator, steps, seconds waiting for data, seconds
    total, CPU seconds of this thread: insensitive to other processes competing for the cores)."""
    sampler.set_epoch(epoch)
    loader.dataset.set_epoch(epoch)
    family.train(True)
    losses = MeanAccumulator()
    cap = train.max_steps_per_epoch
    steps = 0
    wait = 0.0
    start, cpu_start = time.perf_counter(), time.thread_time()
    iterator = iter(loader)
    while not cap or steps < cap:
        fetch = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            break
        batch = to_device(batch, device)
        wait += time.perf_counter() - fetch
        maybe_fail(fault, epoch=epoch, step=steps, rank=rank, world_size=world, default_marker=marker)
        ctx = StepContext(
            epoch=epoch, total_epochs=train.epochs, global_step=global_step + steps, device=device,
            grad_clip=train.grad_clip or None, autocast=autocast,
        )
        step_losses = family.train_step(batch, ctx)
        total = float(step_losses.get("loss/total", 0.0))
        if not math.isfinite(total):
            raise NonFiniteLossError(
                f"non-finite training loss loss/total={total} at epoch {epoch} step {steps} (rank {rank}); "
                f"all losses: {step_losses}"
            )
        losses.add(step_losses)
        steps += 1
    return losses, steps, wait, time.perf_counter() - start, time.thread_time() - cpu_start


@torch.no_grad()
def validate(family: ModelFamily, loader: DataLoader, max_steps: int, device: torch.device, autocast) -> tuple[dict[str, float], list]:
    """Family metrics averaged over every val sample of every rank (NaN ignored); also returns
    the first few batches (for the end-of-run figures)."""
    family.train(False)
    metrics = MeanAccumulator()
    kept: list = []
    with unwrapped_modules(family):
        for step, batch in enumerate(loader):
            if max_steps and step >= max_steps:
                break
            batch = to_device(batch, device)
            if len(kept) < FIGURE_BATCHES:
                kept.append(batch)
            with autocast():
                metrics.add(family.eval_step(batch))
    return metrics.reduce(names=family.metric_names, device=device), kept


def defined_metrics(metrics: Mapping[str, float]) -> tuple[dict[str, float], list[str]]:
    """(metrics with a value, names left out): a metric no validation sample defines (e.g. an
    input subset that no validation subject has) is left out and counted, never logged as NaN."""
    kept = {k: v for k, v in metrics.items() if not math.isnan(v)}
    return kept, sorted(set(metrics) - set(kept))


def _open_tracker(spec: LoopSpec, train: TrainConfig, family: ModelFamily, store: Any):
    from raysys.tracking import RunTracker

    tags = {"family": family.name, "preset": train.preset, "store_id": store.store_id, "run_name": spec.run_name}
    tags.update({f"model.{f}": getattr(family.config, f) for f in TAG_FIELDS if hasattr(family.config, f)})
    tags.update(spec.tags)
    tracker = RunTracker.open(
        spec.run_name, tracking_uri=spec.tracking_uri, experiment=spec.experiment, parent_run_id=spec.parent_run_id, tags=tags
    )
    params = flat_run_config(train, family.config)
    params.update({"data.store_id": store.store_id, "data.modalities": ",".join(family.modalities), **spec.extra_params})
    tracker.log_params(params)
    return tracker


def _write_checkpoint(directory: Path, state: dict[str, Any] | None, rank: int, digest: str, epoch: int, node_id: str | None) -> None:
    if state is not None:
        ckpt.save_state(directory, state)
    ckpt.write_rank_digest(directory, rank, digest, epoch, node_id)


def train_loop_per_worker(config: dict[str, Any]) -> dict[str, Any]:
    """Ray Train worker entry point. ``config`` is ``dataclasses.asdict(LoopSpec)``.

    Returns (on every rank; Ray keeps rank 0's) a summary: epochs done, best metric, MLflow run id.
    """
    from raysys.data import open_store

    spec = LoopSpec(**config)
    FAMILIES.update(spec.families)
    train = from_flat(TrainConfig, spec.train)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device() if not spec.local_mode else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL collectives (all_gather_object too) use the current device
    fault = FaultSpec(**spec.fault) if spec.fault else FaultSpec.from_env()
    marker = os.path.join(spec.run_dir, ".fault_fired")

    store = open_store(train.data)
    model_config = dataclasses.replace(make_config(train.family, train.preset, spec.model_overrides), data_range=tuple(store.value_range))
    # Same seed on every rank for construction; DDP also broadcasts rank 0's weights.
    seed_everything(train.seed, -1, 0)
    family = get_family(train.family)(model_config, store.modalities)
    family.to(device)
    if world > 1:
        for name, module in list(family.modules.items()):
            if any(p.requires_grad for p in module.parameters()):
                family.modules[name] = ray.train.torch.prepare_model(
                    module, move_to_device=False,
                    parallel_strategy_kwargs={"find_unused_parameters": family.find_unused_parameters},
                )

    train_loader, sampler, val_loader = build_loaders(train, model_config, rank, world, device)
    steps_per_epoch = _steps_per_epoch(train_loader, train.max_steps_per_epoch)
    if steps_per_epoch == 0:
        raise ValueError(
            f"no training batches: store {train.data} split 'train' fold {train.fold} has too few subjects "
            f"for batch_size={train.batch_size} x {world} workers (batches need distinct subjects)"
        )
    optimizers, schedulers = family.configure_optimizers(train.epochs, steps_per_epoch)
    family.optimizers, family.schedulers = optimizers, schedulers
    autocast = autocast_factory(train.amp, device)

    start_epoch, best = 0, None
    resumed = _find_resume_state(spec)
    if resumed is not None:
        if resumed["family"] != train.family:
            raise ValueError(f"run {spec.run_name!r} in {spec.storage} holds a {resumed['family']!r} checkpoint, not {train.family!r}")
        family.load_state_dict(resumed["family_state"])
        start_epoch, best = int(resumed["epoch"]), resumed["best_metric"]
        if rank == 0:  # in the job's log: a restarted worker group continued, it did not start over
            print(f"raysys: run {spec.run_name} resumed after epoch {start_epoch} from its checkpoint", flush=True)

    tracker = _open_tracker(spec, train, family, store) if rank == 0 else None
    flat_train = flat_run_config(train, model_config)
    summary: dict[str, Any] = {"epochs_done": start_epoch, "best_metric": best, "mlflow_run_id": tracker.run_id if tracker else None}
    val_batches: list = []
    try:
        global_step = start_epoch * steps_per_epoch
        for epoch in range(start_epoch, train.epochs):
            seed_everything(train.seed, epoch, rank)
            losses, steps, wait, seconds, cpu_seconds = run_epoch(
                family, train_loader, sampler, train, epoch, global_step, device, autocast, fault, rank, world, marker
            )
            global_step += steps
            train_metrics = losses.reduce(device=device)
            val_metrics, val_batches = validate(family, val_loader, train.max_val_steps, device, autocast)
            val_metrics, left_out = defined_metrics(val_metrics)
            family.on_epoch_end(epoch, val_metrics)
            objective = val_metrics.get(family.objective, float("nan"))
            if _is_better(objective, best, family.objective_mode):
                best = objective
            metrics = {
                "epoch": epoch + 1,
                **{f"train/{k}": v for k, v in train_metrics.items()},
                **{f"val/{k}": v for k, v in val_metrics.items()},
                "val/left_out": float(len(left_out)),
                OBJECTIVE: objective,
                "best_objective": best if best is not None else float("nan"),
                "perf/epoch_seconds": seconds,
                "perf/step_seconds": seconds / max(steps, 1),
                "perf/step_cpu_seconds": cpu_seconds / max(steps, 1),
                "perf/data_wait_fraction": wait / max(seconds, 1e-9),
                "perf/samples_per_second": steps * train.batch_size * world / max(seconds, 1e-9),
            }
            if tracker is not None:
                # Before report: a crash in between re-runs this epoch and the tracker skips the step.
                tracker.log_metrics(metrics, step=epoch + 1)
            state = None
            if rank == 0:
                state = {
                    "family": train.family,
                    "modalities": list(family.modalities),
                    "model_config": ckpt.plain_values({k[len("model."):]: v for k, v in flat_train.items() if k.startswith("model.")}),
                    "train_config": ckpt.plain_values({k[len("train."):]: v for k, v in flat_train.items() if k.startswith("train.")}),
                    "family_state": family.state_dict(),
                    "epoch": epoch + 1,
                    "best_metric": best,
                    "rng": ckpt.rng_state(),
                }
            digest = ckpt.parameter_digest(family.modules)
            _report(spec, metrics, state, rank, digest, epoch + 1)
            summary.update(epochs_done=epoch + 1, best_metric=best)
        if tracker is not None:
            _log_figures(tracker, family, val_batches, tuple(store.value_range))
            tracker.finish("FINISHED")
    except BaseException:
        if tracker is not None:
            tracker.finish("FAILED")
        raise
    return summary


def _report(spec: LoopSpec, metrics: dict[str, Any], state: dict | None, rank: int, digest: str, epoch: int) -> None:
    """ray.train.report with this rank's checkpoint part (local mode: a persistent directory)."""
    if spec.local_mode:
        directory = Path(spec.run_dir) / f"checkpoint_epoch={epoch:06d}"
        _write_checkpoint(directory, state, rank, digest, epoch, None)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(str(directory)))
        return
    directory = Path(tempfile.mkdtemp(prefix="raysys-ckpt-"))
    try:
        _write_checkpoint(directory, state, rank, digest, epoch, ray.get_runtime_context().get_node_id())
        # Ray merges every rank's directory into one checkpoint in the run's storage.
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(str(directory)), checkpoint_dir_name=f"checkpoint_epoch={epoch:06d}")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _log_figures(tracker, family: ModelFamily, batches: list, value_range) -> None:
    """Figures are a courtesy: a failure to draw them is logged as a tag, never fails the run."""
    if not batches:
        return
    import matplotlib.pyplot as plt

    from raysys.train.figures import family_figures

    try:
        with unwrapped_modules(family):
            family.train(False)
            figures = family_figures(family, batches, value_range)
        for name, fig in figures.items():
            tracker.log_figure(fig, name)
            plt.close(fig)
    except Exception as err:  # noqa: BLE001 - recorded, not raised
        tracker.set_tags({"figures_error": f"{type(err).__name__}: {err}"[:500]})

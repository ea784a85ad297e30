"""The epoch loop shared by Ray Train workers (``raysys.train.loop``) and ``raysys.train.train_local``.

The loop owns devices, AMP, sharding, validation, checkpoint state and MLflow; the model is
reached only through ``raysys.models.family.ModelFamily``. Per epoch, on every rank:

    seed -> set_epoch -> train steps (family.train_step) -> validation on split "val" (sum/count
    all-reduce) -> family.on_epoch_end -> rank 0 logs to MLflow -> reporter.report(...)

Where the epochs go is a ``Reporter``: Ray Train's (``ray.train.report`` with every rank's part
of the checkpoint; a barrier) or this process's own (``raysys.train.local``). Nothing here
imports Ray; MLflow only when the run is tracked.

Randomness is re-seeded at the start of every epoch from (seed, epoch, rank), so a run resumed
from the checkpoint of epoch e replays epoch e + 1 exactly as an uninterrupted run would.
"""

from __future__ import annotations

import abc
import contextlib
import math
import random
import time
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from raysys.models import get_family, make_config
from raysys.models.family import ModelFamily, StepContext, unwrap
from raysys.names import EPOCH, MODEL_KEY, OBJECTIVE, TAG_FAMILY, TAG_FIGURES_ERROR, TAG_PRESET, TAG_STORE, TRAIN_PREFIX, VAL_PREFIX
from raysys.train.checkpoint import build_state, parameter_digest
from raysys.train.config import TrackingSpec, TrainConfig, flat_run_config, run_modalities
from raysys.train.distributed import MeanAccumulator
from raysys.train.faults import FaultSpec, maybe_fail

FIGURE_BATCHES = 4  # validation batches kept for the end-of-run figures (t-SNE needs a few points)


class NonFiniteLossError(FloatingPointError):
    """The family's ``loss/total`` became NaN or infinite; the run stops (a Tune trial errors)."""


class Reporter(abc.ABC):
    """Where a run's epochs go, and where this process sits: ``rank`` of ``world``, ``device``."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    def prepare_module(self, module: nn.Module, find_unused_parameters: bool) -> nn.Module:
        """Wrap a trainable module for data parallelism (several ranks); default: unchanged."""
        return module

    @abc.abstractmethod
    def resume_state(self) -> dict[str, Any] | None:
        """The checkpoint state to continue from (``checkpoint.build_state``'s dict), or None."""

    @abc.abstractmethod
    def report(self, metrics: dict[str, Any], *, epoch: int, improved: bool,
               state: Callable[[], dict[str, Any]], digest: Callable[[], str]) -> None:
        """The end of ``epoch`` (1-based, the epochs completed): its metrics; ``improved`` when the
        objective is the best so far; ``state()`` builds the checkpoint state (call it on rank 0
        only) and ``digest()`` this rank's parameter digest."""


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


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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


def build_loaders(train: TrainConfig, context: int, rank: int, world: int, device: torch.device,
                  modalities: list[str] | None = None):
    """Train loader (DistinctSubjectBatchSampler sharded by rank) and this rank's val loader;
    items carry ``context`` adjacent slices (the family's ``context_slices``) of ``modalities``
    (the family's; default the store's), with ``raw_images`` when ``train.inputs == "raw"``.
    ``train.training_subjects == "complete"`` keeps only the training subjects with every one
    of them; validation is never filtered."""
    from raysys.data import DistinctSubjectBatchSampler, SliceDataset

    train_set = SliceDataset(train.data, split="train", fold=train.fold, modalities=modalities, context=context,
                             hide_prob=train.hide_prob, seed=train.seed, complete=train.training_subjects == "complete",
                             raw=train.inputs == "raw")
    sampler = DistinctSubjectBatchSampler(
        train_set, train.batch_size, shuffle=True, seed=train.seed, drop_last=True, num_replicas=world, rank=rank
    )
    loader_kwargs: dict[str, Any] = {"num_workers": train.loader_workers, "pin_memory": device.type == "cuda"}
    if train.loader_workers > 0:
        # Persistent workers would keep the dataset's epoch (its random hiding) frozen.
        loader_kwargs.update(persistent_workers=train.hide_prob == 0.0, prefetch_factor=4)
    train_loader = DataLoader(train_set, batch_sampler=sampler, **loader_kwargs)
    val_set = SliceDataset(train.data, split="val", fold=train.fold, modalities=modalities, context=context, hide_prob=0.0,
                           seed=train.seed, raw=train.inputs == "raw")
    # Every validation slice exactly once over all ranks; unequal counts are fine (no collectives).
    shard = torch.utils.data.Subset(val_set, list(range(rank, len(val_set), world)))
    val_loader = DataLoader(shard, batch_size=train.batch_size, shuffle=False, **loader_kwargs)
    return train_loader, sampler, val_loader


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


def family_for_store(train: TrainConfig, model_overrides: Mapping[str, Any], store: Any) -> ModelFamily:
    """The family of ``train`` on ``store`` (config set to the store's value range, and to its raw
    images' range for ``train.inputs == "raw"``) and the run's modalities (``run_modalities``),
    on CPU. Seeded identically on every rank; DDP also broadcasts rank 0's weights."""
    family_cls = get_family(train.family)
    config = family_cls.config_for_store(make_config(train.family, train.preset, dict(model_overrides)), store.value_range)
    if train.inputs == "raw":
        if not store.has_raw:
            raise ValueError(f"train.inputs=raw: store {store.url} has no raw images (convert it with --keep-raw)")
        config = family_cls.config_for_raw_inputs(config, store.raw_range)
    seed_everything(train.seed, -1, 0)
    return family_cls(config, run_modalities(train, store.modalities))


def open_tracker(run_name: str, tracking: TrackingSpec, train: TrainConfig, family: ModelFamily, store: Any,
                 extra_params: Mapping[str, Any]):
    """The run's MLflow run (get-or-create by name) with its tags and params; rank 0 only."""
    from raysys.tracking import RunTracker

    tags = {TAG_FAMILY: train.family, TAG_PRESET: train.preset, TAG_STORE: store.store_id}
    tags.update({f"{MODEL_KEY}{k}": str(v) for k, v in family.run_tags().items()})
    tags.update({k: str(v) for k, v in dict(tracking.tags).items()})
    tracker = RunTracker.open(
        run_name, tracking_uri=tracking.tracking_uri, experiment=tracking.experiment, parent_run_id=tracking.parent_run_id, tags=tags
    )
    params = flat_run_config(train, family.config)
    params.update({"data.store_id": store.store_id, "data.modalities": ",".join(family.modalities), **extra_params})
    tracker.log_params(params)
    return tracker


def run_training(
    train: TrainConfig,
    model_overrides: Mapping[str, Any],
    reporter: Reporter,
    *,
    run_name: str,
    tracking: TrackingSpec | None = None,
    extra_params: Mapping[str, Any] | None = None,
    fault: FaultSpec | None = None,
    fault_marker: str = "",
) -> dict[str, Any]:
    """Train ``train.family`` from ``reporter.resume_state()`` (or from scratch) up to ``train.epochs``.

    ``tracking``: record the run in MLflow on rank 0 (its ``tracking_uri`` already resolved: Ray
    workers ``chdir``), or None. Returns a summary: ``epochs_done``, ``best_metric``,
    ``mlflow_run_id``.
    """
    from raysys.data import open_store

    rank, world, device = reporter.rank, reporter.world, reporter.device
    store = open_store(train.data)
    family = family_for_store(train, model_overrides, store)
    family.to(device)
    for name, module in list(family.modules.items()):
        if any(p.requires_grad for p in module.parameters()):
            family.modules[name] = reporter.prepare_module(module, family.find_unused_parameters)

    train_loader, sampler, val_loader = build_loaders(train, family.context_slices, rank, world, device, list(family.modalities))
    steps_per_epoch = min(len(train_loader), train.max_steps_per_epoch) if train.max_steps_per_epoch else len(train_loader)
    if steps_per_epoch == 0:
        raise ValueError(
            f"no training batches: store {train.data} split 'train' fold {train.fold} has too few subjects "
            f"(with {'all' if train.training_subjects == 'complete' else 'any'} of {','.join(family.modalities)}) "
            f"for batch_size={train.batch_size} x {world} workers (batches need distinct subjects)"
        )
    family.optimizers, family.schedulers = family.configure_optimizers(train.epochs, steps_per_epoch)
    autocast = autocast_factory(train.amp, device)

    start_epoch, best = 0, None
    resumed = reporter.resume_state()
    if resumed is not None:
        if resumed["family"] != train.family:
            raise ValueError(f"run {run_name!r} holds a {resumed['family']!r} checkpoint, not {train.family!r}")
        family.load_state_dict(resumed["family_state"])
        start_epoch, best = int(resumed["epoch"]), resumed["best_metric"]
        if rank == 0:  # in the job's log: a restarted worker group continued, it did not start over
            print(f"raysys: run {run_name} resumed after epoch {start_epoch} from its checkpoint", flush=True)

    tracker = open_tracker(run_name, tracking, train, family, store, extra_params or {}) if tracking and rank == 0 else None
    summary: dict[str, Any] = {"epochs_done": start_epoch, "best_metric": best, "mlflow_run_id": tracker.run_id if tracker else None}
    val_batches: list = []
    try:
        global_step = start_epoch * steps_per_epoch
        for epoch in range(start_epoch, train.epochs):
            seed_everything(train.seed, epoch, rank)
            losses, steps, wait, seconds, cpu_seconds = run_epoch(
                family, train_loader, sampler, train, epoch, global_step, device, autocast, fault, rank, world, fault_marker
            )
            global_step += steps
            train_metrics = losses.reduce(device=device)
            val_metrics, val_batches = validate(family, val_loader, train.max_val_steps, device, autocast)
            val_metrics, left_out = defined_metrics(val_metrics)
            family.on_epoch_end(epoch, val_metrics)
            objective = val_metrics.get(family.objective, float("nan"))
            improved = _is_better(objective, best, family.objective_mode)
            if improved:
                best = objective
            metrics = {
                EPOCH: epoch + 1,
                **{f"{TRAIN_PREFIX}{k}": v for k, v in train_metrics.items()},
                **{f"{VAL_PREFIX}{k}": v for k, v in val_metrics.items()},
                f"{VAL_PREFIX}left_out": float(len(left_out)),
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
                if epoch + 1 == train.epochs:
                    # Also before the last report: Tune ends a trial at its last report (its
                    # thread gets SystemExit there), so nothing may be left to do after it.
                    log_figures(tracker, family, val_batches, tuple(store.value_range))
                    tracker.finish("FINISHED")
                    tracker = None
            done, best_so_far = epoch + 1, best
            reporter.report(
                metrics, epoch=done, improved=improved,
                state=lambda: build_state(train, family, epoch=done, best_metric=best_so_far),
                digest=lambda: parameter_digest(family.modules),
            )
            summary.update(epochs_done=done, best_metric=best)
        if tracker is not None:  # no epoch left to train: the run was already complete
            tracker.finish("FINISHED")
    except SystemExit as stop:
        # Tune stopping a trial that trains in its own process (e.g. ASHA): the run stays open
        # and the study closes it as stopped (raysys.tune.study_tracking.close_trial_runs).
        if stop.code not in (0, None) and tracker is not None:
            tracker.finish("FAILED")
        raise
    except BaseException:
        if tracker is not None:
            tracker.finish("FAILED")
        raise
    return summary


def log_figures(tracker, family: ModelFamily, batches: list, value_range) -> None:
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
        tracker.set_tags({TAG_FIGURES_ERROR: f"{type(err).__name__}: {err}"[:500]})

"""Helpers shared by the bench/train_*.py scripts: a phantom store and a plain PyTorch loop."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

MACHINE = "2-core CPU sandbox, 24 GiB RAM, no GPU (shared with other jobs: numbers are noisy)"


def arguments(doc: str, batch_size: int, steps: int) -> argparse.ArgumentParser:
    """The flags every bench/train_*.py script takes (``--data``, ``--family``, ``--preset``,
    ``--batch-size``, ``--steps``), with that script's defaults."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--data", default=None)
    p.add_argument("--family", default="disentangle")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--steps", type=int, default=steps)
    return p


def ray_fit_perf(args: argparse.Namespace, data: str, workers: int, run_name: str, root: Path,
                 keys: tuple[str, ...]) -> dict:
    """``perf/<key>`` metrics (second epoch) of a 2-epoch ``raysys.train.fit`` run on Ray Train
    with ``workers`` workers of 1 CPU each; Ray must be initialised."""
    from raysys.train import ScalingSpec, TrackingSpec, TrainConfig, fit

    train = TrainConfig(family=args.family, preset=args.preset, data=data, epochs=2, batch_size=args.batch_size,
                        max_steps_per_epoch=args.steps, max_val_steps=1)
    result = fit(train, {}, ScalingSpec(workers=workers, cpus_per_worker=1), run_name=run_name,
                 storage=str(root / "runs"), tracking=TrackingSpec(f"sqlite:///{root / 'mlflow.db'}"))
    return {k: result.metrics[f"perf/{k}"] for k in keys}


def phantom_store(data: str | None, subjects: int = 8) -> str:
    """``data`` if given, else a fresh 64x64 phantom store in a temp dir (made once per process)."""
    if data:
        return str(Path(data).resolve())
    from data_prep.convert import convert
    from data_prep.phantom import generate_cohort

    root = Path(tempfile.mkdtemp(prefix="raysys-bench-"))
    generate_cohort(root / "phantom", subjects=subjects, seed=0, resolution=2)
    convert(str(root / "phantom"), str(root / "store.zarr"), size=(64, 64), folds=4, seed=0, progress=False)
    return str(root / "store.zarr")


def plain_loop_step_seconds(family_name: str, preset: str, data: str, batch_size: int, steps: int, warmup: int = 2) -> dict:
    """Mean seconds per step of a plain PyTorch loop: same family, dataset, sampler and threads."""
    import dataclasses

    from raysys.data import DistinctSubjectBatchSampler, SliceDataset, open_store
    from raysys.models import get_family, make_config
    from raysys.models.family import StepContext
    from raysys.train.loop import _context_slices

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    store = open_store(data)
    config = dataclasses.replace(make_config(family_name, preset), data_range=tuple(store.value_range))
    torch.manual_seed(0)
    family = get_family(family_name)(config, store.modalities)
    dataset = SliceDataset(data, split="train", context=_context_slices(config))
    sampler = DistinctSubjectBatchSampler(dataset, batch_size)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler)
    family.configure_optimizers(1, len(loader))
    family.train(True)
    device = torch.device("cpu")
    done, wait, start = 0, 0.0, None
    epoch = 0
    while done < steps + warmup:
        sampler.set_epoch(epoch)
        iterator = iter(loader)
        while done < steps + warmup:
            if done == warmup:
                start, cpu_start, wait = time.perf_counter(), time.thread_time(), 0.0
            fetch = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                break
            wait += time.perf_counter() - fetch
            family.train_step(batch, StepContext(epoch=0, total_epochs=1, global_step=done, device=device))
            done += 1
        epoch += 1
    seconds, cpu_seconds = time.perf_counter() - start, time.thread_time() - cpu_start
    return {"step_seconds": seconds / steps, "step_cpu_seconds": cpu_seconds / steps, "data_wait_fraction": wait / seconds}

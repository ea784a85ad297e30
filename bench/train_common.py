"""Helpers shared by the bench/train_*.py scripts: a phantom store and a plain PyTorch loop."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch

MACHINE = "2-core CPU sandbox, 24 GiB RAM, no GPU (shared with other jobs: numbers are noisy)"


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

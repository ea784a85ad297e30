"""Helpers shared by the bench/train_*.py scripts: a phantom store and the measured runs (Ray Train, local)."""

from __future__ import annotations

import argparse
import os
import tempfile
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


def bench_train_config(args: argparse.Namespace, data: str):
    """The run every bench/train_*.py script measures: 2 epochs of ``--steps`` steps, 1 val batch."""
    from raysys.train import TrainConfig

    return TrainConfig(family=args.family, preset=args.preset, data=data, epochs=2, batch_size=args.batch_size,
                       max_steps_per_epoch=args.steps, max_val_steps=1)


def ray_fit_perf(args: argparse.Namespace, data: str, workers: int, run_name: str, root: Path,
                 keys: tuple[str, ...]) -> dict:
    """``perf/<key>`` metrics (second epoch) of a 2-epoch ``raysys.train.fit`` run on Ray Train
    with ``workers`` workers of 1 CPU each; Ray must be initialised."""
    from raysys.train import ScalingSpec, TrackingSpec, fit

    result = fit(bench_train_config(args, data), {}, ScalingSpec(workers=workers, cpus_per_worker=1), run_name=run_name,
                 storage=str(root / "runs"), tracking=TrackingSpec(f"sqlite:///{root / 'mlflow.db'}"))
    return {k: result.metrics[f"perf/{k}"] for k in keys}


def local_perf(args: argparse.Namespace, data: str, keys: tuple[str, ...]) -> dict:
    """``perf/<key>`` metrics (second epoch) of the same run in this process without Ray
    (``raysys.train.train_local``: the same epoch loop, no worker, no MLflow), on the threads
    of ``OMP_NUM_THREADS``."""
    from raysys.train import train_local

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    result = train_local(bench_train_config(args, data), device="cpu")
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

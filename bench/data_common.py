"""Shared set-up for the data benchmarks: a phantom cohort and its converted stores, cached in a folder."""

from __future__ import annotations

import os
from pathlib import Path

from data_prep.convert import convert
from data_prep.phantom import generate_cohort

DEFAULT_ROOT = Path(os.environ.get("RAYSYS_BENCH_DIR", "/tmp/raysys-bench-data"))


def cohort(root: Path = DEFAULT_ROOT, subjects: int = 12) -> Path:
    """A phantom cohort at 2 mm (generated once, then reused)."""
    out = root / f"phantom-{subjects}"
    if not (out / "manifest.csv").exists():
        generate_cohort(out, subjects=subjects, seed=0, resolution=2)
    return out


def store(cohort_dir: Path, size: tuple[int, int], root: Path = DEFAULT_ROOT, **kwargs) -> str:
    """A converted store of the cohort at ``size`` (converted once, then reused)."""
    url = str(root / f"store-{cohort_dir.name}-{size[0]}x{size[1]}.zarr")
    convert(str(cohort_dir), url, size=size, folds=4, progress=False, **kwargs)
    return url

"""Conversion wall time vs only decoding the same NIfTI files with the same Dask parallelism.

    python bench/data_convert.py [--subjects 12] [--workers 2] [--repeats 2]

Prints one JSON object: best-of-``repeats`` seconds for decoding (nibabel load + voxel read of
every file, one Dask task per subject) and for the full conversion at 64x64 and 192x160
(threads scheduler, same workers), and their ratio (goal <= 1.3).
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import shutil
import sys
import time
from pathlib import Path

import dask
import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from data_common import DEFAULT_ROOT, cohort  # noqa: E402

from data_prep.convert import convert  # noqa: E402


def decode_subject(paths: list[Path]) -> int:
    return sum(int(np.asarray(nib.load(str(p)).dataobj).size) for p in paths)


def decode_all(cohort_dir: Path, workers: int) -> float:
    subjects: dict[str, list[Path]] = {}
    with open(cohort_dir / "manifest.csv") as handle:
        for row in csv.DictReader(handle):
            subjects.setdefault(row["subject"], []).append(cohort_dir / row["path"])
    start = time.perf_counter()
    tasks = [dask.delayed(decode_subject)(paths) for paths in subjects.values()]
    dask.compute(*tasks, scheduler="threads", num_workers=workers)
    return time.perf_counter() - start


def convert_once(cohort_dir: Path, size: tuple[int, int], workers: int) -> tuple[float, dict]:
    url = DEFAULT_ROOT / "bench-convert.zarr"
    shutil.rmtree(url, ignore_errors=True)
    start = time.perf_counter()
    report = convert(str(cohort_dir), str(url), size=size, folds=4, workers=workers, progress=False)
    seconds = time.perf_counter() - start
    shutil.rmtree(url, ignore_errors=True)
    return seconds, {k: round(v, 2) for k, v in report.phase_seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    cohort_dir = cohort(subjects=args.subjects)
    decode = min(decode_all(cohort_dir, args.workers) for _ in range(args.repeats))
    results = {"machine": f"{platform.machine()} {platform.system()}, 2-core CPU sandbox, no GPU",
               "cohort": f"{args.subjects} phantom subjects at 2 mm", "workers": args.workers,
               "decode_seconds": round(decode, 2), "convert_seconds": {}, "convert_vs_decode": {},
               "convert_phases": {}}
    for size in ((64, 64), (192, 160)):
        seconds, phases = min(convert_once(cohort_dir, size, args.workers) for _ in range(args.repeats))
        results["convert_seconds"][f"{size[0]}x{size[1]}"] = round(seconds, 2)
        results["convert_phases"][f"{size[0]}x{size[1]}"] = phases
        results["convert_vs_decode"][f"{size[0]}x{size[1]}"] = round(seconds / decode, 2)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

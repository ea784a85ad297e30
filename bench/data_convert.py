"""Conversion wall time vs only decoding the same NIfTI files with the same Dask parallelism.

    python bench/data_convert.py [--subjects 12] [--workers 2] [--repeats 2] [--compression zstd|none]

Prints one JSON object: best-of-``repeats`` seconds for decoding (nibabel load + voxel read of
every file, one Dask task per subject) and for the full conversion at 64x64 and 192x160
(threads scheduler, same workers), and their ratio (goal <= 1.3). Rounds are interleaved
(decode, 64x64, 192x160, decode, ...) so load from other jobs hits all of them alike; the CPU
seconds of the process (all threads) of the fastest round are printed too, as they move less
with machine load than wall time.
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


def decode_all(cohort_dir: Path, workers: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of decoding every file of the cohort."""
    subjects: dict[str, list[Path]] = {}
    with open(cohort_dir / "manifest.csv") as handle:
        for row in csv.DictReader(handle):
            subjects.setdefault(row["subject"], []).append(cohort_dir / row["path"])
    start, cpu = time.perf_counter(), time.process_time()
    tasks = [dask.delayed(decode_subject)(paths) for paths in subjects.values()]
    dask.compute(*tasks, scheduler="threads", num_workers=workers)
    return time.perf_counter() - start, time.process_time() - cpu


def convert_once(cohort_dir: Path, size: tuple[int, int], workers: int, compression: str = "zstd",
                 ) -> tuple[float, float, dict]:
    """(wall seconds, CPU seconds, phase seconds) of one conversion into a fresh store."""
    url = DEFAULT_ROOT / "bench-convert.zarr"
    shutil.rmtree(url, ignore_errors=True)
    start, cpu = time.perf_counter(), time.process_time()
    report = convert(str(cohort_dir), str(url), size=size, folds=4, workers=workers, progress=False,
                     compression=compression)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    shutil.rmtree(url, ignore_errors=True)
    return seconds, cpu, {k: round(v, 2) for k, v in report.phase_seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compression", choices=("zstd", "none"), default="zstd",
                        help="the converter's --compression")
    args = parser.parse_args()
    cohort_dir = cohort(subjects=args.subjects)
    convert_once(cohort_dir, (64, 64), args.workers, args.compression)      # warm-up: imports, page cache
    sizes = ((64, 64), (192, 160))
    decodes, converts = [], {size: [] for size in sizes}
    for _ in range(args.repeats):
        decodes.append(decode_all(cohort_dir, args.workers))
        for size in sizes:
            converts[size].append(convert_once(cohort_dir, size, args.workers, args.compression))
    decode, decode_cpu = min(decodes)
    results = {"machine": f"{platform.machine()} {platform.system()}, 2-core CPU sandbox, no GPU",
               "cohort": f"{args.subjects} phantom subjects at 2 mm", "workers": args.workers,
               "compression": args.compression,
               "decode_seconds": round(decode, 2), "decode_cpu_seconds": round(decode_cpu, 2),
               "convert_seconds": {}, "convert_cpu_seconds": {}, "convert_vs_decode": {}, "convert_phases": {},
               "all_rounds_seconds": {"decode": [round(d[0], 2) for d in decodes]}}
    for size in sizes:
        name = f"{size[0]}x{size[1]}"
        seconds, cpu, phases = min(converts[size], key=lambda r: r[0])
        results["convert_seconds"][name] = round(seconds, 2)
        results["convert_cpu_seconds"][name] = round(cpu, 2)
        results["convert_phases"][name] = phases
        results["convert_vs_decode"][name] = round(seconds / decode, 2)
        results["all_rounds_seconds"][name] = [round(r[0], 2) for r in converts[size]]
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

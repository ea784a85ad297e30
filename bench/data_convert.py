"""Conversion wall time vs only decoding the same NIfTI files with the same Dask parallelism.

    python bench/data_convert.py [--subjects 12] [--resolution 1|2] [--workers 2] [--repeats 3]
                                 [--compression lz4|zstd|none] [--no-tissue]

Prints one JSON object: best-of-``repeats`` seconds for two decode-only baselines and for the
full conversion at 64x64 and 192x160 (threads scheduler, same workers, one Dask task per subject):
  decode_nibabel     np.asarray(nib.load(path).dataobj) for every file: plain nibabel, what a
                     script reading the cohort does (the issue's baseline; goal: convert <= 1.3x)
  decode_converter   the converter's own reader, nothing else: the file's bytes, one ISA-L
                     inflate, the voxel array as a view of the inflated bytes
Rounds are interleaved (decodes, 64x64, 192x160, decodes, ...) so load from other jobs hits all
of them alike; the CPU seconds of the process (all threads) of the fastest round are printed too.
``--resolution 1`` (default) is the grid of real cohorts (BraTS: 1 mm); at 2 mm files are 8x
smaller. ``--no-tissue`` converts without the tissue maps, so brain masks are estimated (Otsu,
components, hole filling) as for real data, where no tissue map comes with the images.
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
from data_prep.convert.volumes import GZIP_MAGIC, _nifti_from_bytes, gunzip  # noqa: E402


def decode_nibabel(paths: list[Path]) -> int:
    return sum(int(np.asarray(nib.load(str(p)).dataobj).size) for p in paths)


def decode_converter(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        data = path.read_bytes()
        if data[:2] == GZIP_MAGIC:
            data = gunzip(str(path), data)
        total += int(np.asarray(_nifti_from_bytes(data).dataobj).size)
    return total


def subject_files(cohort_dir: Path, tissue: bool) -> dict[str, list[Path]]:
    subjects: dict[str, list[Path]] = {}
    with open(cohort_dir / "manifest.csv") as handle:
        for row in csv.DictReader(handle):
            if tissue or row["modality"] != "tissue":
                subjects.setdefault(row["subject"], []).append(cohort_dir / row["path"])
    return subjects


def decode_all(subjects: dict[str, list[Path]], workers: int, decode) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of decoding every file of the cohort."""
    start, cpu = time.perf_counter(), time.process_time()
    tasks = [dask.delayed(decode)(paths) for paths in subjects.values()]
    dask.compute(*tasks, scheduler="threads", num_workers=workers)
    return time.perf_counter() - start, time.process_time() - cpu


def without_tissue(cohort_dir: Path) -> Path:
    """A manifest of the cohort without its tissue maps (the images and labels are shared)."""
    manifest = cohort_dir / "manifest-no-tissue.csv"
    with open(cohort_dir / "manifest.csv") as handle:
        rows = [row for row in csv.DictReader(handle) if row["modality"] != "tissue"]
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def convert_once(source: Path, size: tuple[int, int], workers: int, compression: str) -> tuple[float, float, dict]:
    """(wall seconds, CPU seconds, phase seconds) of one conversion into a fresh store."""
    url = DEFAULT_ROOT / "bench-convert.zarr"
    shutil.rmtree(url, ignore_errors=True)
    start, cpu = time.perf_counter(), time.process_time()
    report = convert(str(source), str(url), size=size, folds=4, workers=workers, progress=False,
                     compression=compression)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert report.ok, report.summary()
    shutil.rmtree(url, ignore_errors=True)
    return seconds, cpu, {k: round(v, 2) for k, v in report.phase_seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=12)
    parser.add_argument("--resolution", type=int, choices=(1, 2), default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compression", choices=("lz4", "zstd", "none"), default="lz4")
    parser.add_argument("--no-tissue", action="store_true", help="estimate brain masks (no tissue maps)")
    args = parser.parse_args()
    cohort_dir = cohort(subjects=args.subjects, resolution=args.resolution)
    source = without_tissue(cohort_dir) if args.no_tissue else cohort_dir
    files = subject_files(cohort_dir, tissue=not args.no_tissue)
    convert_once(source, (64, 64), args.workers, args.compression)      # warm-up: imports, page cache
    sizes = ((64, 64), (192, 160))
    decoders = {"decode_nibabel": decode_nibabel, "decode_converter": decode_converter}
    decodes: dict[str, list] = {name: [] for name in decoders}
    converts: dict = {size: [] for size in sizes}
    for _ in range(args.repeats):
        for name, decode in decoders.items():
            decodes[name].append(decode_all(files, args.workers, decode))
        for size in sizes:
            converts[size].append(convert_once(source, size, args.workers, args.compression))
    results = {"machine": f"{platform.machine()} {platform.system()}, 2-core CPU sandbox, no GPU",
               "cohort": f"{args.subjects} phantom subjects at {args.resolution} mm"
                         + (", no tissue maps (masks estimated)" if args.no_tissue else ""),
               "files": sum(len(p) for p in files.values()),
               "input_mb": round(sum(p.stat().st_size for ps in files.values() for p in ps) / 2**20, 1),
               "workers": args.workers, "compression": args.compression, "seconds": {}, "cpu_seconds": {},
               "convert_vs_decode_nibabel": {}, "convert_vs_decode_converter": {}, "convert_phases": {},
               "all_rounds_seconds": {}}
    best = {}
    for name, rounds in decodes.items():
        best[name], cpu = min(rounds)
        results["seconds"][name], results["cpu_seconds"][name] = round(best[name], 2), round(cpu, 2)
        results["all_rounds_seconds"][name] = [round(r[0], 2) for r in rounds]
    for size in sizes:
        name = f"convert_{size[0]}x{size[1]}"
        seconds, cpu, phases = min(converts[size], key=lambda r: r[0])
        results["seconds"][name], results["cpu_seconds"][name] = round(seconds, 2), round(cpu, 2)
        results["convert_phases"][name] = phases
        results["convert_vs_decode_nibabel"][name] = round(seconds / best["decode_nibabel"], 2)
        results["convert_vs_decode_converter"][name] = round(seconds / best["decode_converter"], 2)
        results["all_rounds_seconds"][name] = [round(r[0], 2) for r in converts[size]]
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

"""Time the phantom cohort generator; prints one JSON object.

    python bench/phantom_speed.py [--subjects 20] [--resolution 2] [--workers 2] [--modalities ...]

Template loading (nilearn, once per process) is timed separately from generation.
``cpu_seconds_per_subject`` is the CPU time of a serial 2-subject run in this process: a
figure that, unlike wall time, hardly depends on what else the machine is running.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

from data_prep.phantom import MR_MODALITIES, generate_cohort, load_template


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=20)
    parser.add_argument("--resolution", type=int, default=2, choices=(1, 2))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--modalities", nargs="+", default=list(MR_MODALITIES))
    args = parser.parse_args()

    start = time.perf_counter()
    load_template(args.resolution)
    template_seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix="phantom_bench_") as out:
        start = time.perf_counter()
        generate_cohort(out, subjects=args.subjects, seed=0, resolution=args.resolution,
                        modalities=args.modalities, workers=args.workers)
        seconds = time.perf_counter() - start
        size_mb = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs) / 2**20
    with tempfile.TemporaryDirectory(prefix="phantom_bench_serial_") as out:
        cpu_start = time.process_time()
        generate_cohort(out, subjects=2, seed=0, resolution=args.resolution, modalities=args.modalities, workers=1)
        cpu_per_subject = (time.process_time() - cpu_start) / 2
    print(json.dumps({
        "subjects": args.subjects, "resolution": args.resolution, "workers": args.workers,
        "modalities": args.modalities, "seconds": round(seconds, 2),
        "seconds_per_subject": round(seconds / args.subjects, 3),
        "cpu_seconds_per_subject": round(cpu_per_subject, 3),
        "template_load_seconds": round(template_seconds, 2), "output_mb": round(size_mb, 1),
        "cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()

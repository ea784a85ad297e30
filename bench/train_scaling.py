"""Throughput of 2 Ray Train workers (1 thread each) vs 1 worker on the same model and data.

Prints one JSON object; goal: ``speedup >= 1.7`` on a 2-core box. Throughput is the second
epoch's ``perf/samples_per_second`` (all ranks' samples / epoch seconds), batch size per worker
fixed, so 2 workers process twice the samples per step (data-parallel weak scaling). When other
processes compete for the cores, ``speedup_from_cpu_time`` (from the training thread's CPU time
per step) is an upper bound of what the loop would reach on 2 free cores.

    OMP_NUM_THREADS=1 python bench/train_scaling.py [--data store.zarr] [--family disentangle]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from train_common import MACHINE, arguments, phantom_store, ray_fit_perf  # noqa: E402


def main() -> None:
    args = arguments(__doc__, batch_size=2, steps=15).parse_args()
    data = phantom_store(args.data)

    import ray

    ray.init(address="local", num_cpus=2)  # a fresh local Ray; dashboard on (Train's PG cleaner needs the State API)
    root = Path(tempfile.mkdtemp(prefix="raysys-bench-scaling-"))
    throughput = {workers: ray_fit_perf(args, data, workers, f"scaling-{workers}", root,
                                        ("samples_per_second", "step_seconds", "step_cpu_seconds"))
                  for workers in (1, 2)}
    ray.shutdown()
    print(json.dumps({
        "benchmark": "train_scaling",
        "machine": MACHINE,
        "family": args.family, "preset": args.preset, "batch_size_per_worker": args.batch_size, "steps": args.steps,
        "one_worker": throughput[1], "two_workers": throughput[2],
        "speedup": throughput[2]["samples_per_second"] / throughput[1]["samples_per_second"],
        # What 2 free cores would give if wall time followed the training thread's CPU time:
        # 2 x (CPU per step, 1 worker) / (CPU per step, 2 workers). An upper bound: time spent
        # blocked on gloo's all-reduce (run by gloo's own threads) is not in it.
        "speedup_from_cpu_time": 2 * throughput[1]["step_cpu_seconds"] / throughput[2]["step_cpu_seconds"],
        "goal_speedup": 1.7,
    }, indent=2))


if __name__ == "__main__":
    main()

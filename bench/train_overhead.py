"""Ray Train loop (1 worker, 1 thread) vs the same loop without Ray (``train_local``), same model, data and threads.

Prints one JSON object: step times, their ratio (goal <= 1.03) and the share of the Ray loop's
step time spent waiting for data (goal <= 0.05). Wall-clock step times swing with other load on
the machine, so the CPU time of the training thread per step (``*_cpu_*``, thread_time) is
reported too: it measures the loop's own work and is what the ratio should be judged on here. Both figures are the second epoch's mean
(``perf/step_seconds``), so worker start-up and the first-epoch warm-up are excluded.

    OMP_NUM_THREADS=1 python bench/train_overhead.py [--data store.zarr] [--family disentangle]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from train_common import MACHINE, arguments, local_perf, phantom_store, ray_fit_perf  # noqa: E402

KEYS = ("step_seconds", "step_cpu_seconds", "data_wait_fraction")


def main() -> None:
    p = arguments(__doc__, batch_size=4, steps=20)
    p.add_argument("--repeats", type=int, default=2, help="alternating local/Ray measurements; the best of each is kept")
    args = p.parse_args()
    data = phantom_store(args.data)

    import ray

    ray.init(address="local", num_cpus=2)  # a fresh local Ray; dashboard on (Train's PG cleaner needs the State API)
    root = Path(tempfile.mkdtemp(prefix="raysys-bench-overhead-"))
    local, ray_runs = [], []
    for repeat in range(args.repeats):
        local.append(local_perf(args, data, KEYS))
        ray_runs.append(ray_fit_perf(args, data, 1, f"overhead-{repeat}", root, KEYS))
    ray.shutdown()
    best_local = min(r["step_seconds"] for r in local)
    best_ray = min(r["step_seconds"] for r in ray_runs)
    cpu_local = min(r["step_cpu_seconds"] for r in local)
    cpu_ray = min(r["step_cpu_seconds"] for r in ray_runs)
    print(json.dumps({
        "benchmark": "train_overhead",
        "machine": MACHINE,
        "family": args.family, "preset": args.preset, "batch_size": args.batch_size, "steps": args.steps, "threads": 1,
        "local_step_seconds": best_local,
        "ray_train_step_seconds": best_ray,
        "ratio_ray_over_local": best_ray / best_local,
        "local_step_cpu_seconds": cpu_local,
        "ray_train_step_cpu_seconds": cpu_ray,
        "cpu_ratio_ray_over_local": cpu_ray / cpu_local,
        "goal_ratio": 1.03,
        "ray_data_wait_fraction": min(r["data_wait_fraction"] for r in ray_runs),
        "goal_data_wait_fraction": 0.05,
        "all_local": local, "all_ray": ray_runs,
    }, indent=2))


if __name__ == "__main__":
    main()

"""Per-trial start-up overhead of a raysys study (Train inside Tune), printed as one JSON object.

Runs a small mmhvae study through the real trial driver (one step per epoch, one epoch) and reads
Tune's per-trial results. With ``--workers-per-trial 1`` (default) each trial trains in its own
process (``raysys.train.train_local``); with more, each trial runs a TorchTrainer worker group.
    startup_s  = first iteration's wall time - the first epoch's own work (perf/epoch_seconds):
                 (TorchTrainer controller, placement group, worker processes, DDP process group,)
                 store open, model build, MLflow child run.
    trial_wall_s = Tune's time_total_s of a trial.
    study_wall_per_trial_s = the whole study's wall time / trials (Tune actors included).

    python bench/tune_overhead.py [--data STORE] [--trials 3] [--concurrency 1] [--workers-per-trial 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="store (default: the embedded phantom under the project root)")
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--family", default="mmhvae")
    p.add_argument("--workers-per-trial", type=int, default=1,
                   help="1: the trial trains in its own process; > 1: a TorchTrainer worker group per trial")
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import ray
    from ray.tune import ExperimentAnalysis

    from raysys.tune.cli import ensure_embedded_store, project_root
    from raysys.train import ScalingSpec, TrackingSpec, TrainConfig
    from raysys.tune import StudySpec, run_study

    data = args.data or ensure_embedded_store(project_root())
    with tempfile.TemporaryDirectory(prefix="raysys-bench-") as tmp:
        t0 = time.perf_counter()
        ray.init(address="local", num_cpus=2, resources={"trial_driver": 2}, include_dashboard=True,
                 dashboard_host="127.0.0.1", log_to_driver=False)
        ray_init_s = time.perf_counter() - t0
        try:
            spec = StudySpec(train=TrainConfig(family=args.family, data=data, epochs=1, batch_size=2, max_steps_per_epoch=1,
                                               max_val_steps=1),
                             scaling=ScalingSpec(workers=args.workers_per_trial),
                             name="bench", storage=str(Path(tmp) / "studies"), trials=args.trials, grace_epochs=1,
                             concurrency=args.concurrency, register=False,
                             tracking=TrackingSpec(tracking_uri=f"sqlite:///{Path(tmp) / 'mlflow.db'}", experiment="bench"))
            t0 = time.perf_counter()
            run_study(spec)
            study_s = time.perf_counter() - t0
            trials = ExperimentAnalysis(str(spec.study_dir)).trials
            firsts = [t.last_result for t in trials if t.last_result]
            startup = [r["time_this_iter_s"] - r["perf/epoch_seconds"] for r in firsts]
            wall = [r["time_total_s"] for r in firsts]
            work = [r["perf/epoch_seconds"] for r in firsts]
        finally:
            ray.shutdown()
    print(json.dumps({
        "bench": "tune_overhead",
        "machine": f"{os.cpu_count()}-core CPU sandbox, {platform.machine()}, no GPU",
        "family": args.family,
        "trials": args.trials,
        "workers_per_trial": args.workers_per_trial,
        "trial_runs": "in the trial process" if args.workers_per_trial == 1 else "TorchTrainer worker group",
        "concurrency": args.concurrency,
        "ray_init_s": round(ray_init_s, 2),
        "study_wall_s": round(study_s, 2),
        "study_wall_per_trial_s": round(study_s / args.trials, 2),
        "trial_wall_s_mean": round(statistics.mean(wall), 2),
        "trial_startup_overhead_s_mean": round(statistics.mean(startup), 2),
        "trial_startup_overhead_s_min": round(min(startup), 2),
        "trial_epoch_work_s_mean": round(statistics.mean(work), 3),
    }))


if __name__ == "__main__":
    main()

"""The command line shared by ``jobs/train_<family>.py``: parse flags, start/connect Ray, call ``fit``.

Works as plain ``python jobs/train_mmhvae.py ...`` (starts a local Ray with ``--num-cpus``)
and under ``ray job submit`` (``RAY_ADDRESS`` is set: connects to that cluster).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

from raysys.config import ConfigError
from raysys.preflight import checked_overrides, preflight_train
from raysys.train.config import ScalingSpec, TrackingSpec, TrainConfig, train_config_from_flat

# --smoke: the smallest run that still exercises every part of the loop (CI, quick checks).
SMOKE_TRAIN = {"preset": "tiny", "epochs": 2, "batch_size": 2, "max_steps_per_epoch": 2, "max_val_steps": 2}


def build_parser(family: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"train_{family}.py",
        description=f"Train the {family} model family with Ray Train (DDP, checkpoints, MLflow).",
    )
    p.add_argument("--data", required=True, help="Zarr store (absolute/relative path or fsspec URL) written by data_prep.convert")
    p.add_argument("--preset", default="tiny", help="model preset: tiny | cpu | paper (default tiny; cpu brings its own epochs/batch budget)")
    p.add_argument("--epochs", type=int, default=None, help="epochs to train in total (a re-run continues up to this)")
    p.add_argument("--batch-size", type=int, default=None, help="slices per worker per step (distinct subjects)")
    p.add_argument("--fold", type=int, default=None, help="cross-validation fold: test = fold, val = fold + 1")
    p.add_argument("--workers", type=int, default=1, help="Ray Train workers (0 = run in this process, no Ray workers)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per worker (> 0 uses NCCL and bf16 autocast)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs reserved per worker")
    p.add_argument("--placement", default="PACK", choices=["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"], help="worker placement strategy")
    p.add_argument("--storage", default="ray_results", help="checkpoint storage (local path shared by all nodes, or fsspec URL)")
    p.add_argument("--run-name", default=None, help="run name; re-running with the same name and storage resumes (default <family>-<preset>-fold<k>)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else sqlite:////<cwd>/mlflow.db)")
    p.add_argument("--experiment", default="raysys", help="MLflow experiment name")
    p.add_argument("--max-failures", type=int, default=0, help="worker-group restarts from the last checkpoint on failure (-1 = unlimited)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray started when RAY_ADDRESS is unset (default all)")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="config override, repeatable: train.<field>=v, model.<field>=v, or a bare model field",
    )
    p.add_argument("--smoke", action="store_true", help="tiny preset, 2 epochs of 2 steps, 2 validation batches")
    return p


def configs_from_args(family: str, args: argparse.Namespace) -> tuple[TrainConfig, dict[str, Any], ScalingSpec, TrackingSpec, str]:
    """(train config, model overrides, scaling, tracking, run name) from parsed flags.

    Raises ``ConfigError`` naming the flag: an unknown ``--set`` key or a value of the wrong type."""
    train_over, model_over = checked_overrides("--set", args.overrides, family)
    from raysys.models import preset_budget

    flat: dict[str, Any] = {"family": family, "preset": args.preset, "data": args.data}
    if args.smoke:
        flat.update(SMOKE_TRAIN)
    else:
        try:  # the preset's own budget (cpu: sized for a 2-core box); flags and --set win
            flat.update(preset_budget(family, args.preset))
        except ValueError as err:
            raise ConfigError(f"--preset: {err}") from None
    for name in ("epochs", "batch_size", "fold"):
        if getattr(args, name) is not None:
            flat[name] = getattr(args, name)
    flat.update(train_over)
    train = train_config_from_flat(flat)
    scaling = ScalingSpec(args.workers, args.gpus_per_worker, args.cpus_per_worker, args.placement)
    tracking = TrackingSpec(tracking_uri=args.tracking_uri, experiment=args.experiment)
    run_name = args.run_name or f"{family}-{train.preset}-fold{train.fold}"
    return train, model_over, scaling, tracking, run_name


def init_ray(num_cpus: int | None, resources: dict[str, float] | None = None) -> None:
    """Connect to ``RAY_ADDRESS`` (``ray job submit``) or start a local Ray (train and tune jobs)."""
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init()  # num_cpus would raise when connecting to a cluster
    else:
        # address="local": always a fresh local instance, even when `ray start` left one running here.
        # Dashboard on (loopback): Train's placement-group cleaner needs the State API, e.g. when
        # ASHA stops a trial; without it the stopped trial's workers keep their CPUs.
        ray.init(address="local", num_cpus=num_cpus, resources=resources,
                 include_dashboard=True, dashboard_host="127.0.0.1")


def main(family: str, argv: Sequence[str] | None = None) -> int:
    args = build_parser(family).parse_args(argv)
    try:  # every check that can fail before Ray starts: one line naming the flag, exit 2
        train, model_over, scaling, tracking, run_name = configs_from_args(family, args)
        preflight_train(family, train, model_over)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from raysys.train.trainer import fit

    if scaling.workers > 0:
        init_ray(args.num_cpus)
    result = fit(
        train, model_over, scaling, run_name=run_name, storage=args.storage, tracking=tracking, max_failures=args.max_failures
    )
    summary = {
        "run_name": run_name,
        "metrics": {k: v for k, v in (result.metrics or {}).items() if isinstance(v, (int, float, str))},
        "checkpoint": result.checkpoint.path if result.checkpoint else None,
        "summary": result.return_value,
    }
    print(json.dumps(summary, indent=2, default=str))
    return 0

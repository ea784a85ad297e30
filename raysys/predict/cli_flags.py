"""Flags every cohort-prediction command shares (``python -m raysys.synthesise`` and
``jobs/segment.py --predict``): where the model comes from and where the work runs."""

from __future__ import annotations

import argparse


def add_cohort_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for models:/ and runs:/ (default MLFLOW_TRACKING_URI)")
    p.add_argument("--store", default=None, help="training store to read the preprocessing from (models registered without it)")
    p.add_argument("--address", default=None, help="Ray cluster address (default RAY_ADDRESS, else a local Ray)")
    p.add_argument("--actors", type=int, default=1, help="actors in the pool (one model copy each)")
    p.add_argument("--gpus-per-actor", type=float, default=None, help="default: 1 (or a share) when the cluster has GPUs")

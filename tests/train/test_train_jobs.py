"""The train entry points as a user runs them: ``python jobs/train_<family>.py ... --smoke``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from raysys.names import TAG_FAMILY
from raysys.train.cli import build_parser, configs_from_args

ROOT = Path(__file__).resolve().parents[2]


def test_cli_flags_map_onto_configs():
    args = build_parser("mmhvae").parse_args(
        ["--data", "d.zarr", "--epochs", "7", "--workers", "2", "--gpus-per-worker", "0.5", "--placement", "SPREAD",
         "--set", "train.grad_clip=0.5", "--set", "model.lambda_kl=1e-3", "--set", "levels=3", "--experiment", "e"]
    )
    train, model, scaling, tracking, run_name = configs_from_args("mmhvae", args)
    assert (train.family, train.epochs, train.grad_clip, train.data) == ("mmhvae", 7, 0.5, "d.zarr")
    assert model == {"lambda_kl": "1e-3", "levels": "3"}
    assert (scaling.workers, scaling.gpus_per_worker, scaling.placement) == (2, 0.5, "SPREAD")
    assert tracking.experiment == "e" and tracking.tracking_uri is None
    assert run_name == "mmhvae-tiny-fold0"
    smoke = configs_from_args("disentangle", build_parser("disentangle").parse_args(["--data", "d", "--smoke"]))[0]
    assert smoke.epochs == 2 and smoke.max_steps_per_epoch == 2


def test_cli_rejects_unknown_train_key(capsys):
    from raysys.train.cli import main

    assert main("mmhvae", ["--data", "d", "--set", "train.epochz=3"]) == 2
    assert "epochz" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize(("family", "workers"), [("disentangle", "1"), ("mmhvae", "0")])
def test_job_runs_as_plain_python(family, workers, tiny_store, tmp_path):
    """disentangle through a local Ray with one Train worker; mmhvae in-process (workers=0) to save CI time."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["OMP_NUM_THREADS"] = "1"
    db = tmp_path / "mlflow.db"
    cmd = [
        sys.executable, str(ROOT / "jobs" / f"train_{family}.py"), "--data", tiny_store, "--smoke", "--workers", workers,
        "--num-cpus", "2", "--storage", str(tmp_path / "runs"), "--run-name", "smoke", "--tracking-uri", f"sqlite:///{db}",
        "--set", "train.batch_size=2",
    ]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads(done.stdout[done.stdout.index("{\n"):])
    assert summary["metrics"]["epoch"] == 2
    assert Path(summary["checkpoint"], "state.pt").is_file()
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("raysys").experiment_id])
    assert len(runs) == 1 and runs[0].data.tags[TAG_FAMILY] == family and runs[0].info.status == "FINISHED"


def test_batch_larger_than_the_training_subjects_fails_before_ray(tiny_store, capsys):
    import ray

    from raysys.data import open_store
    from raysys.train.cli import main

    subjects = len(open_store(tiny_store).split_subjects("train", 0))
    assert main("disentangle", ["--data", tiny_store, "--batch-size", str(subjects + 1), "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert f"--batch-size {subjects + 1}" in err and f"use --batch-size <= {subjects}" in err
    assert not ray.is_initialized()

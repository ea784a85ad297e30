"""jobs/train_mmgan.py as a user runs it (--smoke, in-process), and the mmgan search space."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from raysys.models import make_config, preset_budget
from raysys.names import TAG_FAMILY
from raysys.train import ScalingSpec, TrackingSpec, TrainConfig
from raysys.tune.space import load_space
from raysys.tune.trainable import TrialContext, trial_configs

ROOT = Path(__file__).resolve().parents[3]
optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize("preset", ["tiny", "cpu", "paper"])
def test_search_space_gives_valid_configs_and_starts_from_the_papers_or_the_presets_values(preset):
    space, points = load_space("mmgan", preset)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
    study.enqueue_trial(points[0])
    context = TrialContext(train=TrainConfig(family="mmgan", preset=preset), scaling=ScalingSpec(), tracking=TrackingSpec(),
                           train_storage="/unused")
    configs = []
    for _ in range(20):
        trial = study.ask()
        derived = space(trial) or {}
        _, model, _ = trial_configs({**trial.params, **derived}, context)
        configs.append(make_config("mmgan", preset, model))  # unknown keys or bad values raise here
        study.tell(trial, 0.0)
    first = configs[0]
    expected = make_config("mmgan", preset) if preset_budget("mmgan", preset) else make_config("mmgan", "paper")
    assert (first.lambda_l1, first.lr, first.beta1, first.curriculum_end) == (
        expected.lambda_l1, expected.lr, expected.beta1, expected.curriculum_end)
    assert len({c.lr for c in configs}) == len(configs)  # the rest is sampled
    assert all(c.implicit_conditioning and c.curriculum for c in configs)  # the method's design is not tuned


@pytest.mark.slow
def test_train_job_runs_as_plain_python(tiny_store, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = str(ROOT)
    db = tmp_path / "mlflow.db"
    cmd = [
        sys.executable, str(ROOT / "jobs" / "train_mmgan.py"), "--data", tiny_store, "--smoke", "--workers", "0",
        "--storage", str(tmp_path / "runs"), "--run-name", "smoke", "--tracking-uri", f"sqlite:///{db}",
        "--set", "train.batch_size=2",
    ]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads(done.stdout[done.stdout.index("{\n"):])
    assert summary["metrics"]["epoch"] == 2 and summary["metrics"]["objective"] > 0
    assert Path(summary["checkpoint"], "state.pt").is_file()
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("raysys").experiment_id])
    assert len(runs) == 1 and runs[0].data.tags[TAG_FAMILY] == "mmgan" and runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["model.implicit_conditioning"] == "True"
    assert "val/psnr_harmonisation" not in runs[0].data.metrics and "val/psnr_synthesis" in runs[0].data.metrics

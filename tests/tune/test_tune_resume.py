"""--resume after the study driver is killed: no repeated and no lost trials (Optuna and Tune)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from raysys.tune.optuna_adapter import optuna_storage
from raysys.tune.run import STUDY_FILE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]

TRIALS = 4

DRIVER = r"""
import sys, time
import ray
from ray import tune
from raysys.train import TrackingSpec, TrainConfig
from raysys.tune import StudySpec, run_study

def slow_trainable(config, context):
    for epoch in range(context.train.epochs):
        time.sleep(1.5)
        tune.report({"objective": -1000 * config["model.lr"] + epoch, "epoch": epoch})

storage, tracking, mode, ray_tmp = sys.argv[1:5]
ray.init(address="local", num_cpus=2, resources={"trial_driver": 1}, include_dashboard=False, _temp_dir=ray_tmp)
spec = StudySpec(train=TrainConfig(family="disentangle", epochs=2), name="resumable", storage=storage, trials=%d,
                 grace_epochs=2, concurrency=1, register=False, mode="max",
                 tracking=TrackingSpec(tracking_uri=tracking, experiment="t"))
outcome = run_study(spec, resume=mode == "resume", trainable=slow_trainable)
print("OUTCOME", outcome.trials, len(outcome.errored), flush=True)
""" % TRIALS


def kill_ray_of(ray_tmp: str) -> None:
    """Kill the processes of the Ray that the killed driver started (they name its temp dir)."""
    out = subprocess.run(["pgrep", "-f", ray_tmp], capture_output=True, text=True).stdout.split()
    for pid in map(int, out):
        if pid != os.getpid():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def trials_in(storage: Path, *states: optuna.trial.TrialState) -> int:
    """How many Optuna trials of the study are in one of ``states`` (any state when none given)."""
    db = storage / "resumable" / "optuna.db"
    if not db.exists():
        return 0
    try:
        study = optuna.load_study(study_name="resumable", storage=optuna_storage(db.parent))
    except Exception:  # noqa: BLE001 - not created yet
        return 0
    return len(study.get_trials(states=states or None))


def completed(storage: Path) -> int:
    return trials_in(storage, optuna.trial.TrialState.COMPLETE)


def wait_until(condition, proc, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # polls the study's own records; the driver keeps running meanwhile
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_resume_after_killing_the_driver_neither_repeats_nor_loses_trials(tmp_path):
    storage, tracking = tmp_path / "studies", f"sqlite:///{tmp_path / 'mlflow.db'}"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for attempt in ("first", "resume"):
        ray_tmp = tempfile.mkdtemp(prefix="rs", dir="/tmp")  # short: Ray's socket paths are length-limited
        try:
            proc = subprocess.Popen([sys.executable, str(script), str(storage), tracking, attempt, ray_tmp],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                    start_new_session=True)
            if attempt == "first":
                # Kill the driver once the first trial has completed and the second has been asked for.
                wait_until(lambda: completed(storage) >= 1, proc, "first trial did not complete")
                wait_until(lambda: trials_in(storage) >= 2, proc, "second trial was not started")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                assert completed(storage) < TRIALS
            else:
                output, _ = proc.communicate(timeout=300)
                assert proc.returncode == 0, output[-3000:]
                assert f"OUTCOME {TRIALS} 0" in output, output[-3000:]
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            kill_ray_of(ray_tmp)
            shutil.rmtree(ray_tmp, ignore_errors=True)

    study = optuna.load_study(study_name="resumable", storage=optuna_storage(storage / "resumable"))
    real = [t for t in study.get_trials() if "raysys.orphaned" not in t.user_attrs]
    assert len(real) == TRIALS and all(t.state == optuna.trial.TrialState.COMPLETE for t in real), real
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(str(storage / "resumable"))
    assert len(analysis.trials) == TRIALS and all(t.status == "TERMINATED" for t in analysis.trials)
    assert len({t.trial_id for t in analysis.trials}) == TRIALS
    tune_lrs = sorted(t.config["model.lr"] for t in analysis.trials)
    assert tune_lrs == sorted(t.params["model.lr"] for t in real)  # the same trials in both records
    parent = json.loads((storage / "resumable" / STUDY_FILE).read_text())["parent_run_id"]
    run = MlflowClient(tracking).get_run(parent)
    assert run.info.status == "FINISHED" and run.data.metrics["study/trials"] == TRIALS

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
import sys, threading
from pathlib import Path
import ray
from ray import tune
from raysys.train import TrackingSpec, TrainConfig
from raysys.tune import StudySpec, run_study

storage, tracking, mode, ray_tmp, marks = sys.argv[1:6]

def trainable(config, context):
    # In the first driver the second trial reports its first epoch, writes the "held" mark and then
    # holds until the test kills the driver: the kill always lands inside a running trial.
    marks_dir = Path(marks)
    order = len(list(marks_dir.glob("started-*")))  # concurrency 1: trials start one after another
    trial_id = tune.get_context().get_trial_id()
    (marks_dir / f"started-{trial_id}").touch()
    for epoch in range(context.train.epochs):
        tune.report({"objective": -1000 * config["model.lr"] + epoch, "epoch": epoch})
        if mode == "first" and order == 1:
            (marks_dir / "held.tmp").write_text(trial_id)
            (marks_dir / "held.tmp").rename(marks_dir / "held")  # appears whole
            threading.Event().wait()

ray.init(address="local", num_cpus=2, resources={"trial_driver": 1}, include_dashboard=False, _temp_dir=ray_tmp)
spec = StudySpec(train=TrainConfig(family="disentangle", epochs=2), name="resumable", storage=storage, trials=%d,
                 grace_epochs=2, concurrency=1, register=False, mode="max",
                 tracking=TrackingSpec(tracking_uri=tracking, experiment="t"))
outcome = run_study(spec, resume=mode == "resume", trainable=trainable)
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


def completed(storage: Path) -> int:
    db = storage / "resumable" / "optuna.db"
    if not db.exists():
        return 0
    try:
        study = optuna.load_study(study_name="resumable", storage=optuna_storage(f"sqlite:///{db}"))
    except Exception:  # noqa: BLE001 - not created yet
        return 0
    return sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials())


def snapshot_knows(study_dir: Path, trial_id: str, since: float) -> bool:
    """Tune saved its experiment state (trial statuses and searcher) after ``since``, naming ``trial_id``."""
    for path in study_dir.glob("experiment_state-*.json"):
        try:
            written, text = path.stat().st_mtime, path.read_text()
            json.loads(text)
        except (OSError, ValueError):  # being rewritten right now: look again
            continue
        if written > since and trial_id in text:
            return True
    return False


def wait_until(condition, proc: subprocess.Popen, log: Path, seconds: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail at once if the driver exits, or at the deadline."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, f"driver exited while waiting for {what}: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {log.read_text()[-3000:]}"
        time.sleep(0.2)  # the polling interval; the deadline, not this, bounds the wait


def test_resume_after_killing_the_driver_neither_repeats_nor_loses_trials(tmp_path):
    storage, tracking = tmp_path / "studies", f"sqlite:///{tmp_path / 'mlflow.db'}"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    marks = tmp_path / "marks"
    marks.mkdir()
    held = marks / "held"
    for attempt in ("first", "resume"):
        ray_tmp = tempfile.mkdtemp(prefix="rs", dir="/tmp")  # short: Ray's socket paths are length-limited
        log = tmp_path / f"{attempt}.log"  # a file, not a pipe nobody reads while the driver runs
        try:
            with log.open("w") as out:
                proc = subprocess.Popen([sys.executable, str(script), str(storage), tracking, attempt, ray_tmp, str(marks)],
                                        stdout=out, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
            if attempt == "first":
                # Kill the driver while the second trial runs, once Tune's saved state knows that trial.
                wait_until(held.exists, proc, log, 240, "the second trial's first report")
                second, reported = held.read_text(), held.stat().st_mtime
                wait_until(lambda: snapshot_knows(storage / "resumable", second, reported), proc, log, 60,
                           "an experiment-state snapshot after the second trial reported")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                assert completed(storage) == 1  # the first trial only: the second was cut off
            else:
                assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
                assert f"OUTCOME {TRIALS} 0" in log.read_text(), log.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            kill_ray_of(ray_tmp)
            shutil.rmtree(ray_tmp, ignore_errors=True)

    study = optuna.load_study(study_name="resumable", storage=optuna_storage(f"sqlite:///{storage / 'resumable' / 'optuna.db'}"))
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

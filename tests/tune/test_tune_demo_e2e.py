"""End to end, as `make demo` does it: a real `ray start --head` on loopback, a real `mlflow
server`, `ray job submit` of a 2-trial study; then the MLflow records, the champion, and
raysys.registry.load. Everything runs under its own temp dir and free ports; `demo.sh stop`
(in a finally) stops exactly what the script started."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from raysys.tune.spec import STUDY_EXPERIMENT

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "jobs" / "demo.sh"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _is_zombie(pid: str) -> bool:
    state = subprocess.run(["ps", "-o", "stat=", "-p", pid], capture_output=True, text=True).stdout.strip()
    return state.startswith("Z") or not state


def ports(demo_dir: Path) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split("=") for line in (demo_dir / "ports.env").read_text().split())}


def test_ray_job_submit_of_a_two_trial_study_registers_a_loadable_champion(tiny_store):
    demo_dir = Path(tempfile.mkdtemp(prefix="rd", dir="/tmp"))  # short: Ray's socket paths are length-limited
    env = {**os.environ, "DEMO_DIR": str(demo_dir), "PY": sys.executable, "DEMO_TRIALS": "2", "DEMO_EPOCHS": "1",
           "DEMO_STEPS": "2", "DEMO_VAL_STEPS": "1", "DEMO_ARGS": f"--data {tiny_store} --batch-size 2 --name e2e",
           "DEMO_PRESET": "tiny", "DEMO_EVAL_ARGS": "--max-slices-per-subject 3"}
    try:
        proc = subprocess.run(["bash", str(DEMO)], env=env, capture_output=True, text=True, timeout=800)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        assert "MLflow UI" in proc.stdout and "registered model : models:/mmhvae/" in proc.stdout
        # The champion's held-out summary, model beside the trivial baselines, and the submit line.
        assert "baseline:zeros" in proc.stdout and "baseline:copy" in proc.stdout
        assert (demo_dir / "evaluation" / "table.csv").is_file() and (demo_dir / "evaluation" / "summary.json").is_file()
        assert f"RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH={demo_dir}/auth_token" in proc.stdout and "ray job submit --address http://127.0.0.1:" in proc.stdout
        p = ports(demo_dir)
        # The job really went through the cluster's job server and SUCCEEDED.
        # (the CLI, with the token auth the head enabled; Ray reads RAY_AUTH_MODE at import)
        ray_cli = str(Path(sys.executable).parent / "ray")
        listed = subprocess.run([ray_cli, "job", "list", "--address", f"http://127.0.0.1:{p['DASH_PORT']}"],
                                env={**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(demo_dir / "auth_token")}, capture_output=True, text=True, timeout=120)
        assert listed.returncode == 0, listed.stderr[-2000:]
        statuses = re.findall(r"status=<JobStatus\.(\w+)", listed.stdout) or re.findall(r"'status': '(\w+)'", listed.stdout)
        assert statuses == ["SUCCEEDED"], listed.stdout[-2000:]

        uri = f"http://127.0.0.1:{p['MLFLOW_PORT']}"
        client = MlflowClient(uri, registry_uri=uri)
        experiment = client.get_experiment_by_name(STUDY_EXPERIMENT)
        runs = client.search_runs([experiment.experiment_id])
        parents = [r for r in runs if r.data.tags.get("raysys.role") == "study"]
        assert len(parents) == 1
        parent = parents[0]
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert len(children) == 2
        assert {r.info.run_name for r in children} == {r.data.tags["raysys.trial_id"] for r in children}
        assert all("objective" in r.data.metrics and "model.levels" in r.data.params for r in children)
        assert parent.data.params["study.trials"] == "2" and "data.store_id" in parent.data.params  # as its children log it
        champion = client.get_model_version_by_alias("mmhvae", "champion")
        assert champion.tags["raysys.store_id"] == parent.data.params["data.store_id"]
        assert champion.run_id in {r.info.run_id for r in children}

        import raysys.registry

        model = raysys.registry.load("models:/mmhvae@champion", tracking_uri=uri)
        x = np.random.default_rng(0).normal(size=(2, 4, 64, 64)).astype("float32")
        out = model.synthesise(x, np.array([[1, 0, 0, 1], [0, 1, 1, 1]], dtype=bool))
        assert out.shape == (2, 4, 64, 64) and np.isfinite(out).all()
    finally:
        sid_file = demo_dir / "ray.sid"
        head_session = sid_file.read_text().strip() if sid_file.exists() else None
        subprocess.run(["bash", str(DEMO), "stop"], env=env, capture_output=True, text=True, timeout=120)
        leftover = subprocess.run(["pgrep", "-f", str(demo_dir)], capture_output=True, text=True).stdout.split()
        if head_session:  # Ray's agents rename themselves (ray::DashboardAgent): find them by session
            leftover += subprocess.run(["pgrep", "-s", head_session], capture_output=True, text=True).stdout.split()
        shutil.rmtree(demo_dir, ignore_errors=True)
    leftover = [pid for pid in leftover if not _is_zombie(pid)]  # exited, waiting for init to reap it
    assert not leftover, f"processes of the demo still running: {leftover}"

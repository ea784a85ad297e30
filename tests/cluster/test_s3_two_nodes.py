"""Two Ray nodes whose only shared thing is an S3 bucket (moto on loopback).

``ray job submit`` of a 2-worker STRICT_SPREAD training that reads its store from S3,
checkpoints to S3 and logs artifacts through an MLflow server that keeps them on S3. Mid-run the
second node's raylet is killed and the node started again: the run resumes from the S3
checkpoint, in exactly one MLflow run with continuous epochs. Its last checkpoint is then
registered, and a Ray task pinned to the second node loads ``models:/mmhvae@champion`` there.
"""

from __future__ import annotations

import json
import sys
import re

import pytest
import s3fs
from mlflow.tracking import MlflowClient

from .conftest import BUCKET, NODE_IP, ROOT_DIR, RayNodes, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

EPOCHS = 12  # ~1.5 s each: long enough that the node is lost while the run still trains
RUN_NAME = "s3-two-nodes"


@pytest.fixture()
def s3_store(aws, phantom_dir):
    from data_prep.convert import convert

    url = f"s3://{BUCKET}/stores/phantom.zarr"
    convert(str(phantom_dir), url, size=(64, 64), normalise="zscore", folds=4, seed=0)
    return url


def checkpoints(storage: str) -> list[str]:
    import s3fs

    fs = s3fs.S3FileSystem()
    fs.invalidate_cache()
    return sorted(p.rsplit("/", 1)[-1] for p in fs.glob(f"{storage.removeprefix('s3://')}/{RUN_NAME}/checkpoint_epoch=*"))


def test_training_survives_the_loss_of_a_node_with_only_s3_shared(aws, s3_store, mlflow_s3, tmp_path):
    nodes = RayNodes(aws)
    storage = f"s3://{BUCKET}/runs"
    try:
        nodes.start_head(num_cpus=1)
        second = nodes.add_node(num_cpus=1, name="second")
        runtime_env = {"env_vars": {**aws, "OMP_NUM_THREADS": "1"}}
        submitted = nodes.ray(
            "job", "submit", "--address", nodes.dashboard, "--no-wait", "--runtime-env-json", json.dumps(runtime_env), "--",
            sys.executable, str(ROOT_DIR / "jobs" / "train_mmhvae.py"), "--data", s3_store, "--storage", storage,
            "--workers", "2", "--placement", "STRICT_SPREAD", "--cpus-per-worker", "1", "--batch-size", "2",
            "--epochs", str(EPOCHS), "--max-failures", "3", "--run-name", RUN_NAME, "--tracking-uri", mlflow_s3,
            "--set", "train.max_steps_per_epoch=3", "--set", "train.max_val_steps=1",
        )
        assert submitted.returncode == 0, submitted.stderr[-3000:]
        job_id = re.search(r"raysubmit_\w+", submitted.stdout + submitted.stderr).group(0)

        def job(*args: str) -> str:
            done = nodes.ray("job", *args, "--address", nodes.dashboard, job_id)
            return (done.stdout + done.stderr).lower()  # e.g. "job 'raysubmit_...' succeeded"

        # The node is lost once the run has a checkpoint on S3 and is still training.
        try:
            wait_until(lambda: bool(checkpoints(storage)) or "failed" in job("status"),
                       400, "the first checkpoint on S3", poll=2)
        except TimeoutError as error:
            raise AssertionError(f"{error}; job log:\n{job('logs')[-5000:]}") from None
        assert checkpoints(storage), job("logs")[-5000:]   # Ray keeps the best and the latest, not epoch 1 itself
        assert "checkpoint_epoch=%06d" % EPOCHS not in checkpoints(storage)
        nodes.kill_raylet(second)
        nodes.add_node(num_cpus=1, name="second")

        wait_until(lambda: any(s in job("status") for s in ("succeeded", "failed", "stopped")), 600, "the job's end", poll=3)
        logs, status = job("logs"), job("status")
        assert "succeeded" in status, logs[-4000:]
        resumed = [int(e) for e in re.findall(rf"run {RUN_NAME} resumed after epoch (\d+)", logs)]
        assert resumed and 1 <= resumed[0] < EPOCHS, logs[-4000:]

        # Resumed, not restarted: the last epoch's checkpoint is on S3, one MLflow run, epochs 1..N.
        assert checkpoints(storage)[-1] == "checkpoint_epoch=%06d" % EPOCHS
        run = the_one_run(mlflow_s3)

        # Register the final checkpoint (read back from S3) and load it on the second node: the
        # model files reach that node through the MLflow server, from the bucket.
        publish_from_s3(storage, run, mlflow_s3, s3_store, tmp_path)
        loaded = nodes.ray("job", "submit", "--address", nodes.dashboard, "--", sys.executable, "-c",
                           LOAD_ON_A_NODE % mlflow_s3, timeout=300)
        assert loaded.returncode == 0 and f"LOADED on {NODE_IP}" in loaded.stdout, (loaded.stdout + loaded.stderr)[-3000:]
    finally:
        nodes.stop()


LOAD_ON_A_NODE = """
import numpy as np, ray

@ray.remote(resources={"second": 1})  # a worker process on the second node
def load_there(tracking_uri):
    import raysys.registry

    model = raysys.registry.load("models:/mmhvae@champion", tracking_uri=tracking_uri)
    images = np.zeros((1, len(model.modalities), 64, 64), dtype="float32")
    out = model.synthesise(images, np.ones((1, len(model.modalities)), dtype=bool))
    assert out.shape == images.shape and np.isfinite(out).all()
    return ray.util.get_node_ip_address()

ray.init()
print("LOADED on", ray.get(load_there.remote("%s")))
"""


def the_one_run(tracking_uri: str):
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("raysys")
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`raysys.run_name` = '{RUN_NAME}'")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "epoch")] == list(range(1, EPOCHS + 1))
    # The run's artifacts went through the server into the bucket.
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    stored = s3fs.S3FileSystem().find(f"{BUCKET}/mlartifacts")
    assert any(run.info.run_id in path and path.endswith(".png") for path in stored), stored[:20]
    return run


def publish_from_s3(storage: str, run, tracking_uri: str, store_url: str, tmp_path) -> None:
    from raysys.data import open_store
    from raysys.registry.champion import publish

    local = tmp_path / "checkpoint"
    s3fs.S3FileSystem().get(f"{storage.removeprefix('s3://')}/{RUN_NAME}/checkpoint_epoch=%06d/" % EPOCHS, str(local),
                            recursive=True)
    publication = publish(tracking_uri=tracking_uri, family="mmhvae", checkpoint_dir=local, objective_name="objective",
                          objective_value=run.data.metrics["objective"], mode="max",
                          store_id=open_store(store_url).store_id, run_id=run.info.run_id)
    assert publication.is_champion

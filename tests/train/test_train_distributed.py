"""DDP across two Ray nodes on this machine, and recovery from a worker killed mid-run.

One 2-node ``ray.cluster_utils.Cluster`` (loopback, 1 CPU per node) serves both tests; 2 workers
are placed STRICT_SPREAD, i.e. one per node, each with its own gloo process group member.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import ray
from mlflow.tracking import MlflowClient
from ray.cluster_utils import Cluster

from raysys.train import ScalingSpec, TrackingSpec, TrainConfig, fit, load_state
from raysys.train.checkpoint import read_rank_records
from raysys.train.faults import ENV_PREFIX

pytestmark = pytest.mark.slow

SPREAD = ScalingSpec(workers=2, cpus_per_worker=1.0, placement="STRICT_SPREAD")


@pytest.fixture(scope="module")
def two_node_cluster():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1"})
    cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    ray.init(address=cluster.address)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    return {"storage": str(root / "storage"), "tracking": f"sqlite:///{root / 'mlflow.db'}", "results": {}}


def train_config(store: str) -> TrainConfig:
    return TrainConfig(family="toy", data=store, epochs=3, batch_size=2, max_steps_per_epoch=4, max_val_steps=2)


def test_ddp_on_two_nodes_keeps_replicas_identical(two_node_cluster, tiny_store, shared):
    result = fit(train_config(tiny_store), {}, SPREAD, run_name="ddp", storage=shared["storage"], tracking=TrackingSpec(shared["tracking"]))
    shared["results"]["ddp"] = result
    assert result.metrics["epoch"] == 3

    checkpoint = Path(result.checkpoint.path)
    assert checkpoint.is_relative_to(Path(shared["storage"]) / "ddp")
    records = read_rank_records(checkpoint)
    assert sorted(records) == [0, 1]
    assert records[0]["node_id"] != records[1]["node_id"]  # really on two Ray nodes
    assert records[0]["parameter_sha256"] == records[1]["parameter_sha256"]  # DDP kept them in sync
    assert load_state(checkpoint)["epoch"] == 3
    # Best (by objective) and latest are kept; at least the latest, at most two.
    kept = sorted(p.name for p in (Path(shared["storage"]) / "ddp").glob("checkpoint_epoch=*"))
    assert 1 <= len(kept) <= 2 and kept[-1] == "checkpoint_epoch=000003"


def test_worker_killed_mid_run_resumes_from_checkpoint(two_node_cluster, tiny_store, shared, monkeypatch, tmp_path):
    marker = tmp_path / "fault_fired"
    # Rank 1 dies (os._exit) at epoch 1 (0-based), step 2: after the epoch-1 checkpoint was written.
    monkeypatch.setenv(ENV_PREFIX + "AT", "1:2")
    monkeypatch.setenv(ENV_PREFIX + "RANK", "1")
    monkeypatch.setenv(ENV_PREFIX + "MODE", "exit")
    monkeypatch.setenv(ENV_PREFIX + "MARKER", str(marker))
    result = fit(
        train_config(tiny_store), {}, SPREAD, run_name="faulty", storage=shared["storage"],
        tracking=TrackingSpec(shared["tracking"]), max_failures=1,
    )
    assert marker.exists()  # the fault really fired
    assert result.metrics["epoch"] == 3
    records = read_rank_records(result.checkpoint.path)
    assert records[0]["parameter_sha256"] == records[1]["parameter_sha256"]

    baseline = shared["results"].get("ddp")
    assert baseline is not None, "needs the uninterrupted run of the previous test"
    # Exact replay is expected (per-epoch seeding); allow float noise from the restarted process group.
    assert math.isclose(result.metrics["objective"], baseline.metrics["objective"], abs_tol=0.05)

    client = MlflowClient(tracking_uri=shared["tracking"])
    experiment = client.get_experiment_by_name("raysys")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`raysys.run_name` = 'faulty'")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    for key in ("epoch", "objective", "train/loss/total", "val/psnr"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2, 3], key


def test_real_family_with_discriminators_under_ddp(two_node_cluster, tiny_store, shared):
    """MMHVAE with its GAN on from the first step: model AND per-modality discriminators under DDP."""
    train = TrainConfig(family="mmhvae", data=tiny_store, epochs=1, batch_size=2, max_steps_per_epoch=2, max_val_steps=1)
    result = fit(
        train, {"gan_start_epoch": 0, "disc_start_epoch": 0}, SPREAD, run_name="mmhvae-gan",
        storage=shared["storage"], tracking=TrackingSpec(shared["tracking"]),
    )
    assert math.isfinite(result.metrics["train/loss/total"])
    assert result.metrics["train/loss/disc"] > 0  # the discriminators really trained
    records = read_rank_records(result.checkpoint.path)
    assert records[0]["parameter_sha256"] == records[1]["parameter_sha256"]
    assert set(load_state(result.checkpoint.path)["family_state"]["modules"]) > {"model"}

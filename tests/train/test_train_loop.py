"""The train loop in Ray Train local mode (workers=0, in-process): metrics, checkpoints, resume, MLflow."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from raysys.models import build_family
from raysys.names import TAG_FAMILY, TAG_FIGURES_ERROR, TAG_PRESET, TAG_RUN_NAME, TAG_STORE
from raysys.train import NonFiniteLossError, ScalingSpec, TrackingSpec, TrainConfig, fit, load_state
from raysys.train.checkpoint import parameter_digest, read_rank_records

torch.set_num_threads(1)
LOCAL = ScalingSpec(workers=0)


def toy_train(store: str, **kw) -> TrainConfig:
    base = dict(family="toy", preset="tiny", data=store, epochs=2, batch_size=2, max_steps_per_epoch=3, max_val_steps=2)
    base.update(kw)
    return TrainConfig(**base)


def mlflow_runs(uri: str, experiment: str = "raysys"):
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id]) if exp else []


def test_fit_reports_metrics_and_loadable_checkpoint(tiny_store, tmp_path, tracking_uri):
    result = fit(toy_train(tiny_store), {}, LOCAL, run_name="toy-a", storage=str(tmp_path / "runs"), tracking=TrackingSpec(tracking_uri))
    m = result.metrics
    assert m["epoch"] == 2
    for key in ("train/loss/total", "train/loss/l1", "val/psnr", "val/l1", "objective"):
        assert math.isfinite(m[key]), key
    assert m["objective"] == m["val/psnr"]
    assert 0.0 <= m["perf/data_wait_fraction"] <= 1.0

    state = load_state(result.checkpoint.path)  # torch.load(weights_only=True) inside
    assert state["family"] == "toy" and state["epoch"] == 2
    assert state["train_config"]["epochs"] == 2 and state["model_config"]["width"] == 8
    assert state["model_config"]["data_range"] == [-5.0, 5.0]  # from the store's value_range
    fresh = build_family("toy", "tiny", state["modalities"])
    fresh.modules["model"].load_state_dict(state["family_state"]["modules"]["model"])
    assert parameter_digest(fresh.modules) == read_rank_records(result.checkpoint.path)[0]["parameter_sha256"]
    assert set(state["family_state"]["schedulers"]) == {"model"}

    client, runs = mlflow_runs(tracking_uri)
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["train.family"] == "toy" and run.data.params["model.width"] == "8"
    assert run.data.tags[TAG_FAMILY] == "toy" and run.data.tags[TAG_PRESET] == "tiny" and run.data.tags[TAG_STORE]
    assert run.data.tags["model.width"] == "8"  # the family's run_tags
    assert [x.step for x in client.get_metric_history(run.info.run_id, "val/psnr")] == [1, 2]
    # The best reported epoch objective is what the latest checkpoint records as best, and the best
    # epoch's own checkpoint (kept: best by objective) records the same value.
    objective = {x.step: x.value for x in client.get_metric_history(run.info.run_id, "objective")}
    assert sorted(objective) == [1, 2]
    best_epoch = max(objective, key=objective.get)
    assert state["best_metric"] == pytest.approx(objective[best_epoch])
    assert m["best_objective"] == pytest.approx(objective[best_epoch])
    best_state = load_state(Path(result.checkpoint.path).parent / f"checkpoint_epoch={best_epoch:06d}")
    assert best_state["epoch"] == best_epoch and best_state["best_metric"] == pytest.approx(objective[best_epoch])
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "figures")]
    assert "figures/synthesis_grid.png" in artifacts


def test_rerun_continues_and_matches_uninterrupted_run(tiny_store, tmp_path, tracking_uri):
    storage = str(tmp_path / "runs")
    tracking = TrackingSpec(tracking_uri)
    straight = fit(toy_train(tiny_store, epochs=3), {}, LOCAL, run_name="straight", storage=storage, tracking=tracking)
    fit(toy_train(tiny_store, epochs=2), {}, LOCAL, run_name="resumed", storage=storage, tracking=tracking)
    resumed = fit(toy_train(tiny_store, epochs=3), {}, LOCAL, run_name="resumed", storage=storage, tracking=tracking)
    assert resumed.return_value["epochs_done"] == 3 and resumed.metrics["epoch"] == 3
    # Per-epoch reseeding + restored optimizer/scheduler state: the continuation is exact.
    assert read_rank_records(resumed.checkpoint.path)[0]["parameter_sha256"] == read_rank_records(straight.checkpoint.path)[0]["parameter_sha256"]
    assert resumed.metrics["objective"] == pytest.approx(straight.metrics["objective"], abs=1e-6)

    client, runs = mlflow_runs(tracking_uri)
    by_name = {r.data.tags[TAG_RUN_NAME]: r for r in runs}
    assert sorted(by_name) == ["resumed", "straight"]  # one MLflow run per training run
    steps = [x.step for x in client.get_metric_history(by_name["resumed"].info.run_id, "epoch")]
    assert steps == [1, 2, 3]
    assert by_name["resumed"].data.params["train.epochs"] == "2"
    assert by_name["resumed"].data.tags["relaunched.train.epochs"] == "3"


def test_non_finite_loss_stops_the_run(tiny_store, tmp_path, tracking_uri):
    with pytest.raises(NonFiniteLossError, match="loss/total"):
        fit(toy_train(tiny_store), {"poison_epoch": 1}, LOCAL, run_name="nan", storage=str(tmp_path), tracking=TrackingSpec(tracking_uri))
    _, runs = mlflow_runs(tracking_uri)
    assert [r.info.status for r in runs] == ["FAILED"]


def test_bad_arguments_fail_on_the_driver(tiny_store, tmp_path, tracking_uri):
    tracking = TrackingSpec(tracking_uri)
    with pytest.raises(ValueError, match="width_typo"):
        fit(toy_train(tiny_store), {"width_typo": 3}, LOCAL, run_name="x", storage=str(tmp_path), tracking=tracking)
    with pytest.raises(ValueError, match="run_name"):
        fit(toy_train(tiny_store), {}, LOCAL, run_name="a/b", storage=str(tmp_path), tracking=tracking)
    with pytest.raises(Exception, match="missing.zarr"):
        fit(toy_train(str(tmp_path / "missing.zarr")), {}, LOCAL, run_name="x", storage=str(tmp_path), tracking=tracking)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["disentangle", "mmhvae"])
def test_real_family_trains_one_epoch(family, tiny_store, tmp_path, tracking_uri):
    train = TrainConfig(family=family, preset="tiny", data=tiny_store, epochs=1, batch_size=2, max_steps_per_epoch=2, max_val_steps=1)
    result = fit(train, {}, LOCAL, run_name=family, storage=str(tmp_path), tracking=TrackingSpec(tracking_uri))
    assert result.metrics["epoch"] == 1 and math.isfinite(result.metrics["train/loss/total"])
    assert "objective" in result.metrics
    state = load_state(result.checkpoint.path)
    assert state["family"] == family
    client, runs = mlflow_runs(tracking_uri)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert TAG_FIGURES_ERROR not in runs[0].data.tags, runs[0].data.tags.get(TAG_FIGURES_ERROR)
    artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id, "figures")}
    expected = {"figures/synthesis_grid.png"}
    if family == "disentangle":
        expected |= {"figures/tsne_z_by_modality.png", "figures/tsne_fs_by_subject.png"}
    assert expected <= artifacts

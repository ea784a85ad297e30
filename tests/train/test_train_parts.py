"""Unit tests of the train package's parts: MLflow adapter, fault hook, metric averaging, configs."""

from __future__ import annotations

import math

import pytest
import torch
from mlflow.tracking import MlflowClient

from raysys.config import ConfigError
from raysys.tracking import PARENT_TAG, RunTracker, resolve_tracking_uri
from raysys.config import split_flat
from raysys.train.config import ScalingSpec, TrainConfig, flat_run_config, train_config_from_flat
from raysys.train.distributed import MeanAccumulator
from raysys.train.faults import FaultSpec, InjectedFault, maybe_fail


def test_tracking_uri_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_tracking_uri() == f"sqlite:///{tmp_path}/mlflow.db"
    assert resolve_tracking_uri("rel/x.db") == f"sqlite:///{tmp_path}/rel/x.db"
    assert resolve_tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////abs/env.db")
    assert resolve_tracking_uri() == "sqlite:////abs/env.db"
    with pytest.raises(ValueError, match="not-a-uri"):
        resolve_tracking_uri("not-a-uri")


def test_one_run_per_name_and_parent(tracking_uri):
    first = RunTracker.open("trial_1", tracking_uri=tracking_uri, experiment="e", tags={"family": "toy"})
    again = RunTracker.open("trial_1", tracking_uri=tracking_uri, experiment="e")
    assert again.run_id == first.run_id
    parent = MlflowClient(tracking_uri).create_run(first.client.get_experiment_by_name("e").experiment_id).info.run_id
    nested = RunTracker.open("trial_1", tracking_uri=tracking_uri, experiment="e", parent_run_id=parent)
    assert nested.run_id != first.run_id
    assert nested.client.get_run(nested.run_id).data.tags[PARENT_TAG] == parent
    assert RunTracker.open("trial_1", tracking_uri=tracking_uri, experiment="e", parent_run_id=parent).run_id == nested.run_id


def test_metrics_are_logged_once_per_step(tracking_uri):
    tracker = RunTracker.open("r", tracking_uri=tracking_uri)
    assert tracker.log_metrics({"epoch": 1, "val/psnr": 20.0}, step=1)
    reopened = RunTracker.open("r", tracking_uri=tracking_uri)  # e.g. after a restart
    assert not reopened.log_metrics({"epoch": 1, "val/psnr": 21.0}, step=1)
    assert reopened.log_metrics({"epoch": 2, "val/psnr": 22.0}, step=2)
    history = tracker.client.get_metric_history(tracker.run_id, "val/psnr")
    assert [(m.step, m.value) for m in history] == [(1, 20.0), (2, 22.0)]


def test_fault_spec_parsing_and_single_firing(tmp_path):
    assert FaultSpec.from_env({}) is None
    spec = FaultSpec.from_env({"RAYSYS_FAULT_AT": "1:2", "RAYSYS_FAULT_MODE": "raise", "RAYSYS_FAULT_MARKER": str(tmp_path / "m")})
    assert (spec.epoch, spec.step, spec.rank, spec.mode) == (1, 2, None, "raise")
    with pytest.raises(ValueError, match="RAYSYS_FAULT_AT"):
        FaultSpec.from_env({"RAYSYS_FAULT_AT": "later"})
    maybe_fail(spec, epoch=1, step=2, rank=0, world_size=2, default_marker="unused")  # not the last rank
    maybe_fail(spec, epoch=1, step=1, rank=1, world_size=2, default_marker="unused")  # not the step
    with pytest.raises(InjectedFault):
        maybe_fail(spec, epoch=1, step=2, rank=1, world_size=2, default_marker="unused")
    maybe_fail(spec, epoch=1, step=2, rank=1, world_size=2, default_marker="unused")  # marker exists: no second fault


def test_mean_accumulator_ignores_nan():
    acc = MeanAccumulator()
    acc.add({"psnr": torch.tensor([10.0, float("nan"), 20.0]), "loss": 1.0})
    acc.add({"psnr": torch.tensor([30.0]), "loss": 3.0, "never": torch.tensor([float("nan")])})
    out = acc.reduce(names=["missing"])
    assert out["psnr"] == pytest.approx(20.0) and out["loss"] == pytest.approx(2.0)
    assert math.isnan(out["never"]) and math.isnan(out["missing"])


def test_configs_check_values_and_round_trip():
    with pytest.raises(ConfigError, match="train.epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="scaling.workers"):
        ScalingSpec(workers=-1)
    train = train_config_from_flat({"epochs": "4", "amp": "off", "data": "/d"})
    assert (train.epochs, train.amp) == (4, "off")
    from toy_family import ToyConfig

    flat = flat_run_config(train, ToyConfig())
    assert flat["train.epochs"] == 4 and flat["model.width"] == 8 and flat["model.data_range"] == (-5.0, 5.0)
    train_over, model_over = split_flat({"train.epochs": 2, "model.width": 4, "lr": 0.1}, bare="model")
    assert train_over == {"epochs": 2} and model_over == {"width": 4, "lr": 0.1}

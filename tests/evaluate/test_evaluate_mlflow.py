"""The evaluation run in a real sqlite MLflow: artifacts, tags, metrics, and test tags on the
registered model version; and the registry's training record written by save_from_checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from raysys.evaluate import evaluate, format_summary
from raysys.evaluate.tracking import EXPERIMENT
from raysys.tracking import get_or_create_experiment

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "registry"))
from registry_helpers import write_checkpoint  # noqa: E402

FILES = {"per_subject.csv", "table.csv", "table.md", "figure.png", "summary.json"}


@pytest.mark.slow
def test_evaluation_run_and_model_version_tags(tiny_store, model_dirs, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    experiment = get_or_create_experiment(client, "train", uri)
    run_id = client.create_run(experiment).info.run_id
    client.log_artifacts(run_id, str(model_dirs["disentangle"]), "model")
    client.set_terminated(run_id)
    client.create_registered_model("dis-eval")
    source = f"{client.get_run(run_id).info.artifact_uri}/model"
    version = client.create_model_version("dis-eval", source, run_id=run_id).version
    client.set_registered_model_alias("dis-eval", "champion", version)

    result = evaluate("models:/dis-eval@champion", tiny_store, out=tmp_path / "out", tracking_uri=uri,
                      max_slices_per_subject=4)
    assert result.run_id is not None
    run = client.get_run(result.run_id)
    assert client.get_experiment(run.info.experiment_id).name == EXPERIMENT and run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["raysys.model_uri"] == "models:/dis-eval@champion" and tags["raysys.split"] == "test"
    assert tags["raysys.model_version"] == str(version) and tags["raysys.store_id"] == result.summary["store_id"]
    assert {a.path for a in client.list_artifacts(result.run_id)} == FILES
    metrics = run.data.metrics
    target = next(iter(result.summary["targets"]))
    assert metrics[f"test/ssim_synthesis/{target}"] == pytest.approx(result.summary["targets"][target]["synthesis"]["model"]["ssim"])
    assert f"test/ssim_self/{target}/baseline_zeros" in metrics and "test/beats_baselines" in metrics
    mv = client.get_model_version("dis-eval", str(version)).tags
    assert mv["raysys.test.beats_baselines"] == str(result.summary["beats_baselines"])
    assert float(mv["raysys.test.ssim_synthesis_mean"]) == pytest.approx(result.summary["ssim_synthesis_mean"])
    assert mv["raysys.test.evaluation_run"] == result.run_id
    text = format_summary(result.summary)
    assert "baseline:copy" in text and target in text


def test_save_from_checkpoint_records_the_training_store_fold_and_subjects(tiny_store, tmp_path):
    import json

    from raysys.data import open_store
    from raysys.registry.format import save_from_checkpoint
    from raysys.train.checkpoint import load_state, save_state

    checkpoint = write_checkpoint(tmp_path / "ck", "disentangle")
    state = load_state(checkpoint)
    state["train_config"] = {**state["train_config"], "data": tiny_store, "fold": 1}
    save_state(checkpoint, state)
    meta = json.loads((save_from_checkpoint(checkpoint, tmp_path / "m") / "raysys_model.json").read_text())
    store = open_store(tiny_store)
    assert meta["training"]["store_id"] == store.store_id and meta["training"]["fold"] == 1
    assert meta["training"]["val_subjects"] == [store.subjects[i] for i in store.split_subjects("val", 1)]
    assert meta["training"]["train_subjects"] == [store.subjects[i] for i in store.split_subjects("train", 1)]
    # a checkpoint that names no store (older train configs): no record, as before
    old = json.loads((save_from_checkpoint(write_checkpoint(tmp_path / "ck2", "disentangle"), tmp_path / "m2")
                      / "raysys_model.json").read_text())
    assert "training" not in old

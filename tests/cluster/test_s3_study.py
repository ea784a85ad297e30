"""A study whose storage is a bucket: Tune's experiment, study.json and the trials' checkpoints on
S3 (a moto server on loopback), the Optuna study in its own database, MLflow in another."""

from __future__ import annotations

import json

import optuna
import pytest
from mlflow import MlflowClient

from raysys.names import TAG_CHECKPOINT
from raysys.train import TrackingSpec, TrainConfig
from raysys.tune import StudySpec, run_study
from raysys.tune.optuna_adapter import optuna_storage

from .conftest import BUCKET

pytestmark = pytest.mark.slow


@pytest.mark.timeout(900)
def test_study_on_s3_keeps_its_state_in_the_bucket_registers_from_it_and_resumes(aws, tiny_store, tmp_path):
    import ray
    import s3fs

    # After ``aws``: the trial drivers and Train workers inherit the S3 endpoint and credentials.
    ray.init(address="local", num_cpus=2, resources={"trial_driver": 2}, include_dashboard=False, log_to_driver=False)
    try:
        spec = StudySpec(
            train=TrainConfig(family="disentangle", data=tiny_store, epochs=1, batch_size=2,
                              max_steps_per_epoch=2, max_val_steps=1),
            name="s3study", storage=f"s3://{BUCKET}/studies", optuna_storage=f"sqlite:///{tmp_path / 'optuna.db'}",
            trials=2, grace_epochs=1, concurrency=2, register=True,
            tracking=TrackingSpec(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="s3"),
        )
        outcome = run_study(spec)
        assert outcome.trials == 2 and not outcome.errored, outcome.errored
        assert outcome.study_dir == f"s3://{BUCKET}/studies/s3study"

        s3 = s3fs.S3FileSystem()
        s3.invalidate_cache()
        study_key = f"{BUCKET}/studies/s3study"
        assert s3.exists(f"{study_key}/tuner.pkl")
        assert json.loads(s3.cat_file(f"{study_key}/study.json"))["parent_run_id"] == outcome.parent_run_id
        assert not (tmp_path / "studies").exists()

        trials = optuna.load_study(study_name="s3study", storage=optuna_storage(spec.optuna_url)).get_trials()
        assert len(trials) == 2 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)

        # The champion was packed from the best trial's checkpoint, which lives in the bucket.
        assert outcome.best_checkpoint.startswith(f"s3://{BUCKET}/studies/s3study/train/"), outcome.best_checkpoint
        assert s3.exists(outcome.best_checkpoint.removeprefix("s3://") + "/state.pt")
        assert outcome.champion is not None and outcome.champion.is_champion
        client = MlflowClient(outcome.tracking_uri, registry_uri=outcome.tracking_uri)
        version = client.get_model_version("disentangle", outcome.champion.version)
        assert version.tags[TAG_CHECKPOINT] == outcome.best_checkpoint

        # --resume of the finished study reads study.json and Tune's state back from S3: nothing left to run.
        again = run_study(spec, resume=True)
        assert again.parent_run_id == outcome.parent_run_id and again.trials == 2 and not again.errored
        assert again.best_trial == outcome.best_trial
        trials = optuna.load_study(study_name="s3study", storage=optuna_storage(spec.optuna_url)).get_trials()
        assert len(trials) == 2
        assert client.get_run(outcome.parent_run_id).info.status == "FINISHED"
    finally:
        ray.shutdown()

"""A 2-trial multi-objective disentangle study through the real trial driver (raysys.train.fit):
Optuna gets two directions, completed trials carry two values, the Pareto front is recorded, and
the best trial (ASHA / champion side) is the primary objective's."""

from __future__ import annotations

import json
import math

import optuna
import pytest
import ray
from mlflow import MlflowClient

from raysys.train import TrackingSpec, TrainConfig
from raysys.tune import StudySpec, run_study
from raysys.tune.optuna_adapter import TUNE_TRIAL_ATTR, optuna_storage
from raysys.tune.results import PARETO_FILE


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, resources={"trial_driver": 2}, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_multi_objective_study_records_two_values_and_the_pareto_front(local_ray, tmp_path, tiny_store):
    # Full validation (max_val_steps=0): the val split's second subject gives the score its
    # other-subject references (the validation loader is ordered by subject).
    spec = StudySpec(train=TrainConfig(family="disentangle", data=tiny_store, epochs=1, batch_size=4,
                                       max_steps_per_epoch=1, max_val_steps=0),
                     name="mo", storage=str(tmp_path / "studies"), trials=2, grace_epochs=1, concurrency=2,
                     register=False, tracking=TrackingSpec(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="mo"),
                     objectives=("objective", "val/disentanglement"))
    assert spec.objective_specs == [("objective", "max"), ("val/disentanglement", "max")]
    outcome = run_study(spec)
    assert outcome.trials == 2 and not outcome.errored, outcome.errored

    study = optuna.load_study(study_name="mo", storage=optuna_storage(spec.optuna_url))
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE] * 2
    complete = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(complete) == 2
    for trial in complete:
        assert len(trial.values) == 2 and all(math.isfinite(v) for v in trial.values), trial.values
        assert -2.0 <= trial.values[1] <= 2.0  # val/disentanglement is bounded
        assert trial.user_attrs[TUNE_TRIAL_ATTR]

    # The Pareto front names Optuna's best_trials by their Tune trial ids (= MLflow child run names).
    pareto_ids = {t.user_attrs[TUNE_TRIAL_ATTR] for t in study.best_trials}
    assert {t["tune_trial_id"] for t in outcome.pareto_front} == pareto_ids
    assert all(set(t["values"]) == {"objective", "val/disentanglement"} for t in outcome.pareto_front)
    assert json.loads(spec.study_dir.read_text(PARETO_FILE)) == json.loads(json.dumps(outcome.pareto_front))

    # ASHA / best trial / champion side: the primary objective only.
    assert outcome.best_objective == pytest.approx(max(t.values[0] for t in complete))
    best_number = max(complete, key=lambda t: t.values[0])
    assert outcome.best_trial == best_number.user_attrs[TUNE_TRIAL_ATTR]

    client = MlflowClient(outcome.tracking_uri)
    parent = client.get_run(outcome.parent_run_id)
    assert parent.data.params["study.objectives"] == "objective(max),val/disentanglement(max)"
    assert set(parent.data.tags["raysys.pareto_trials"].split(",")) == pareto_ids
    assert parent.data.metrics["study/pareto_trials"] == len(pareto_ids)
    assert PARETO_FILE in [a.path for a in client.list_artifacts(outcome.parent_run_id)]
    # Every trial logged the score per epoch in its MLflow child run.
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{outcome.parent_run_id}'")
    assert len(children) == 2 and all("val/disentanglement" in run.data.metrics for run in children)


def test_objectives_are_validated_and_the_primary_is_the_familys_objective(tmp_path):
    def make(objectives):
        return StudySpec(train=TrainConfig(family="disentangle"), name="x", storage=str(tmp_path), objectives=objectives)

    assert make(()).objective_specs == [("objective", "max")] and not make(()).multi_objective
    assert make("val/psnr_cross, val/disentanglement:min").objective_specs == [
        ("objective", "max"), ("val/disentanglement", "min")]
    for bad, match in [("val/disentanglement,objective", "first"), ("objective,val/nope", "not a metric"),
                       ("objective,objective", "duplicate"), ("objective,val/ssim_cross:up", "'max' or 'min'"),
                       ("objective:min,val/disentanglement", "primary objective's mode")]:
        with pytest.raises(ValueError, match=match):
            make(bad)

"""The study driver with small function trainables: conditional params, Optuna storage, nan errors."""

from __future__ import annotations

import math
import sys

import optuna
import pytest
import ray
import ray.cloudpickle
from mlflow import MlflowClient
from ray import tune

from raysys.tune.study import StudyError, StudySpec, optuna_storage, run_study
from search_spaces import disentangle

# Trial processes cannot import this test module by name: ship its functions by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, resources={"trial_driver": 2}, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def echo_trainable(config, context):
    """Reports the config's lr as the objective for every epoch (so the best trial is known)."""
    for epoch in range(context.train["epochs"]):
        tune.report({"objective": -math.log10(config["model.lr"]) + epoch, "epoch": epoch})


def nan_trainable(config, context):
    """A trial whose loss becomes nan when lambda_c is large: it must end as an error."""
    if config["model.lambda_c"] > 4.0:
        raise FloatingPointError(f"loss/total is nan at epoch 0 (model.lambda_c={config['model.lambda_c']:.2f})")
    tune.report({"objective": 1.0, "epoch": 0})


def spec(tmp_path, **kw) -> StudySpec:
    base = dict(family="disentangle", data=None, name="s", storage=str(tmp_path / "studies"), trials=6, max_epochs=1,
                grace_epochs=1, concurrency=2, register=False, mode="max",
                tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="t")
    base.update(kw)
    return StudySpec(**base)


def test_conditional_params_reach_the_trainable_and_optuna_records_them(local_ray, tmp_path):
    s = spec(tmp_path, fixed={"encoder": "condconv"})
    outcome = run_study(s, trainable=echo_trainable)
    assert outcome.trials == 6 and not outcome.errored
    study = optuna.load_study(study_name="s", storage=optuna_storage(s.study_dir))
    trials = study.get_trials()
    assert len(trials) == 6 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    by_number = sorted(trials, key=lambda t: t.number)
    paper = disentangle.PAPER_POINTS[0]
    assert by_number[0].params["model.lr"] == pytest.approx(paper["model.lr"])  # paper point first
    for t in trials:
        p = t.params
        assert ("model.lambda_adv" in p) == (p["model.regulariser"] == "adv")
        assert p["model.encoder"] == "condconv" and 2 <= p["model.n_experts"] <= 6
    best = max(trials, key=lambda t: t.value)
    assert outcome.best_objective == pytest.approx(best.value)
    assert outcome.best_config["model.lr"] == pytest.approx(best.params["model.lr"])
    client = MlflowClient(s.tracking_uri)
    parent = client.get_run(outcome.parent_run_id)
    assert parent.data.params["study.fixed.encoder"] == "condconv"
    assert parent.data.metrics["study/best_objective"] == pytest.approx(best.value)
    assert parent.info.status == "FINISHED"
    with pytest.raises(StudyError, match="already exists"):
        run_study(s, trainable=echo_trainable)


def test_nan_trial_ends_as_error_with_its_reason_and_the_study_goes_on(local_ray, tmp_path):
    s = spec(tmp_path, trials=8, seed=3)
    outcome = run_study(s, trainable=nan_trainable)
    study = optuna.load_study(study_name="s", storage=optuna_storage(s.study_dir))
    states = [t.state for t in study.get_trials()]
    failed = [t for t in study.get_trials() if t.params["model.lambda_c"] > 4.0]
    assert outcome.trials == 8 and len(states) == 8
    assert failed, "seeded sampler should draw at least one lambda_c > 4 in 8 trials"
    assert all(t.state == optuna.trial.TrialState.FAIL for t in failed)
    assert states.count(optuna.trial.TrialState.COMPLETE) == 8 - len(failed)
    assert len(outcome.errored) == len(failed)
    assert all("loss/total is nan" in reason for reason in outcome.errored.values())
    tags = MlflowClient(s.tracking_uri).get_run(outcome.parent_run_id).data.tags
    assert sum(k.startswith("raysys.error.") for k in tags) == len(failed)


def test_real_trial_with_an_infinite_loss_errors_with_the_train_loops_reason(local_ray, tmp_path, tiny_store):
    """The real trial driver (raysys.train.fit): lambda_c=inf makes loss/total infinite at step 0."""
    s = spec(tmp_path, data=tiny_store, trials=1, mode=None, fixed={"lambda_c": "inf"}, batch_size=2,
             max_steps_per_epoch=2, max_val_steps=1, register=True)
    outcome = run_study(s)
    assert outcome.trials == 1 and outcome.best_trial is None and outcome.champion is None
    (reason,) = outcome.errored.values()
    assert "NonFiniteLossError" in reason and "loss/total=inf" in reason
    study = optuna.load_study(study_name="s", storage=optuna_storage(s.study_dir))
    assert [t.state for t in study.get_trials()] == [optuna.trial.TrialState.FAIL]

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

from raysys.names import TAG_CLOSED_BY, TAG_ERROR, TAG_LEFT_OPEN
from raysys.train import TrackingSpec, TrainConfig
from raysys.tune import StudyError, StudySpec, run_study
from raysys.tune.optuna_adapter import optuna_storage
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
    for epoch in range(context.train.epochs):
        tune.report({"objective": -math.log10(config["model.lr"]) + epoch, "epoch": epoch})


def nan_trainable(config, context):
    """A trial whose loss becomes nan when lambda_c is large: it must end as an error."""
    if config["model.lambda_c"] > 4.0:
        raise FloatingPointError(f"loss/total is nan at epoch 0 (model.lambda_c={config['model.lambda_c']:.2f})")
    tune.report({"objective": 1.0, "epoch": 0})


def spec(tmp_path, train=None, **kw) -> StudySpec:
    base = dict(name="s", storage=str(tmp_path / "studies"), trials=6, grace_epochs=1, concurrency=2, register=False,
                mode="max", tracking=TrackingSpec(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="t"))
    base.update(kw)
    return StudySpec(train=TrainConfig(family="disentangle", epochs=1, **(train or {})), **base)


def test_conditional_params_reach_the_trainable_and_optuna_records_them(local_ray, tmp_path):
    s = spec(tmp_path, fixed={"encoder": "condconv"})
    outcome = run_study(s, trainable=echo_trainable)
    assert outcome.trials == 6 and not outcome.errored
    study = optuna.load_study(study_name="s", storage=optuna_storage(s.optuna_url))
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
    client = MlflowClient(outcome.tracking_uri)
    parent = client.get_run(outcome.parent_run_id)
    assert parent.data.params["study.fixed.encoder"] == "condconv"
    # The parent logs the shared training config under the keys its children use.
    assert parent.data.params["train.epochs"] == "1" and parent.data.params["train.family"] == "disentangle"
    assert parent.data.metrics["study/best_objective"] == pytest.approx(best.value)
    assert parent.info.status == "FINISHED"
    with pytest.raises(StudyError, match="already exists"):
        run_study(s, trainable=echo_trainable)


def test_nan_trial_ends_as_error_with_its_reason_and_the_study_goes_on(local_ray, tmp_path):
    s = spec(tmp_path, trials=8, train={"seed": 3})
    outcome = run_study(s, trainable=nan_trainable)
    study = optuna.load_study(study_name="s", storage=optuna_storage(s.optuna_url))
    states = [t.state for t in study.get_trials()]
    failed = [t for t in study.get_trials() if t.params["model.lambda_c"] > 4.0]
    assert outcome.trials == 8 and len(states) == 8
    assert failed, "seeded sampler should draw at least one lambda_c > 4 in 8 trials"
    assert all(t.state == optuna.trial.TrialState.FAIL for t in failed)
    assert states.count(optuna.trial.TrialState.COMPLETE) == 8 - len(failed)
    assert len(outcome.errored) == len(failed)
    assert all("loss/total is nan" in reason for reason in outcome.errored.values())
    tags = MlflowClient(outcome.tracking_uri).get_run(outcome.parent_run_id).data.tags
    assert sum(k.startswith("raysys.error.") for k in tags) == len(failed)


def test_real_trial_with_an_infinite_loss_errors_with_the_train_loops_reason(local_ray, tmp_path, tiny_store):
    """The real trial driver (raysys.train.fit): lambda_c=inf makes loss/total infinite at step 0."""
    s = spec(tmp_path, train={"data": tiny_store, "batch_size": 2, "max_steps_per_epoch": 2, "max_val_steps": 1},
             trials=1, mode=None, fixed={"lambda_c": "inf"}, register=True)
    outcome = run_study(s)
    assert outcome.trials == 1 and outcome.best_trial is None and outcome.champion is None
    (reason,) = outcome.errored.values()
    # Read from Ray Train's WorkerGroupError (rank 0's exception), not from the error's text.
    assert reason.startswith("NonFiniteLossError: ") and "loss/total=inf" in reason
    study = optuna.load_study(study_name="s", storage=optuna_storage(s.optuna_url))
    assert [t.state for t in study.get_trials()] == [optuna.trial.TrialState.FAIL]
    client = MlflowClient(outcome.tracking_uri)
    parent = client.get_run(outcome.parent_run_id)
    assert parent.info.status == "FAILED" and "NonFiniteLossError" in parent.data.tags[TAG_ERROR]
    (child,) = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{outcome.parent_run_id}'")
    assert child.info.status == "FAILED"  # ended by the train loop itself on the non-finite loss


def failing_trainable(config, context):
    raise RuntimeError(f"no data for lr={config['model.lr']:.2e}")


def test_a_study_whose_trials_all_fail_ends_its_parent_run_failed_with_the_reason(local_ray, tmp_path):
    outcome = run_study(spec(tmp_path, trials=2), trainable=failing_trainable)
    assert outcome.best_trial is None and len(outcome.errored) == 2
    assert all(reason.startswith("RuntimeError: no data for lr=") for reason in outcome.errored.values())
    parent = MlflowClient(outcome.tracking_uri).get_run(outcome.parent_run_id)
    assert parent.info.status == "FAILED"
    assert parent.data.tags[TAG_ERROR].startswith("all 2 trials failed (2 errored)")


def test_an_interrupted_driver_ends_the_parent_and_open_child_runs_killed(local_ray, tmp_path, monkeypatch):
    import raysys.tune.run

    children = []

    def interrupted_while_summarising(results, mode, study_dir, parent_run_id, tracking_uri):
        client = MlflowClient(tracking_uri)  # a trial's run still open when Ctrl-C arrives
        run = client.create_run(client.get_run(parent_run_id).info.experiment_id, run_name="t_open",
                                tags={"mlflow.parentRunId": parent_run_id})
        children.append(run.info.run_id)
        raise KeyboardInterrupt

    monkeypatch.setattr(raysys.tune.run, "summarise", interrupted_while_summarising)
    s = spec(tmp_path, trials=1)
    with pytest.raises(KeyboardInterrupt):
        run_study(s, trainable=echo_trainable)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (child,) = children
    assert client.get_run(child).info.status == "KILLED" and client.get_run(child).data.tags[TAG_CLOSED_BY] == "study"
    parent = client.search_runs([client.get_run(child).info.experiment_id], "tags.`raysys.role` = 'study'")[0]
    assert parent.info.status == "KILLED" and "interrupted" in parent.data.tags[TAG_ERROR]


def test_resume_closes_the_runs_a_killed_driver_left_running(local_ray, tmp_path):
    from ray.tune import ExperimentAnalysis

    s = spec(tmp_path, trials=2)
    outcome = run_study(s, trainable=echo_trainable)
    client = MlflowClient(outcome.tracking_uri)
    # What a SIGKILL between a trial's end and the study's end leaves: the parent and a finished
    # trial's run RUNNING, and the run of a trial Tune never recorded (started after its last snapshot).
    client.update_run(outcome.parent_run_id, status="RUNNING")
    client.set_tag(outcome.parent_run_id, TAG_ERROR, "interrupted (an earlier Ctrl-C)")  # cleared by the resume
    experiment = client.get_run(outcome.parent_run_id).info.experiment_id
    finished_trial = ExperimentAnalysis(str(s.study_dir)).trials[0].trial_id
    left = {}
    for trial in (finished_trial, "unknown_00009"):
        run = client.create_run(experiment, run_name=trial, tags={"mlflow.parentRunId": outcome.parent_run_id})
        client.log_metric(run.info.run_id, "epoch", 1, step=1)
        left[trial] = run.info.run_id

    resumed = run_study(s, resume=True, trainable=echo_trainable)

    assert resumed.parent_run_id == outcome.parent_run_id and resumed.trials == 2
    finished, unknown = client.get_run(left[finished_trial]), client.get_run(left["unknown_00009"])
    assert finished.info.status == "FINISHED" and "TERMINATED" in finished.data.tags[TAG_LEFT_OPEN]
    assert unknown.info.status == "KILLED" and TAG_LEFT_OPEN in unknown.data.tags
    parent = client.get_run(outcome.parent_run_id)
    assert parent.info.status == "FINISHED" and TAG_ERROR not in parent.data.tags
    assert not client.search_runs([experiment], f"tags.mlflow.parentRunId = '{outcome.parent_run_id}' and attributes.status = 'RUNNING'")

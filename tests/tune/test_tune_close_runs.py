"""No trial run is left RUNNING after a study (real MLflow, sqlite backend)."""

from __future__ import annotations

from mlflow import MlflowClient

from raysys.names import TAG_ERROR, TAG_LEFT_OPEN
from raysys.tracking import get_or_create_experiment
from raysys.tune import study_tracking


def test_stopped_and_errored_trials_are_closed_with_their_reason(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = get_or_create_experiment(client, "studies", uri)
    parent = client.create_run(experiment, run_name="study").info.run_id
    runs = {}
    for trial, epochs, status in [("t_00000", 3, "RUNNING"), ("t_00001", 1, "RUNNING"), ("t_00002", 1, "RUNNING"),
                                  ("t_00003", 3, "FINISHED")]:
        run = client.create_run(experiment, run_name=trial, tags={"mlflow.parentRunId": parent})
        for epoch in range(1, epochs + 1):
            client.log_metric(run.info.run_id, "epoch", epoch, step=epoch)
        if status != "RUNNING":
            client.set_terminated(run.info.run_id, status=status)
        runs[trial] = run.info.run_id
    other = client.create_run(experiment, run_name="t_00001").info.run_id  # not a child: untouched

    closed = study_tracking.close_trial_runs(uri, "studies", parent, {"t_00002": "ValueError: nan loss"}, max_epochs=3)

    assert closed == {"t_00000": "FINISHED", "t_00001": "FINISHED", "t_00002": "FAILED"}
    get = lambda trial: client.get_run(runs[trial])  # noqa: E731
    assert get("t_00001").info.status == "FINISHED"
    assert get("t_00001").data.tags["raysys.stopped"] == "asha" and get("t_00001").data.tags["raysys.stopped_epoch"] == "1"
    assert "raysys.stopped" not in get("t_00000").data.tags  # reached max_epochs: not an early stop
    assert all(get(t).data.tags["raysys.closed_by"] == "study" for t in ("t_00000", "t_00001", "t_00002"))
    assert get("t_00002").info.status == "FAILED" and get("t_00002").data.tags["raysys.error"] == "ValueError: nan loss"
    assert "raysys.stopped" not in get("t_00003").data.tags
    assert client.get_run(other).info.status == "RUNNING"
    assert not client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent}' and attributes.status = 'RUNNING'")


def _study_with_children(tmp_path, trials):
    """A parent run and one RUNNING child run per trial, as a study driver leaves them."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = get_or_create_experiment(client, "studies", uri)
    parent = client.create_run(experiment, run_name="study").info.run_id
    runs = {}
    for trial, epochs in trials.items():
        run = client.create_run(experiment, run_name=trial, tags={"mlflow.parentRunId": parent})
        for epoch in range(1, epochs + 1):
            client.log_metric(run.info.run_id, "epoch", epoch, step=epoch)
        runs[trial] = run.info.run_id
    return uri, client, parent, runs


def test_an_interrupted_driver_ends_every_open_child_run_killed(tmp_path):
    uri, client, parent, runs = _study_with_children(tmp_path, {"t_00000": 1, "t_00001": 2})
    client.set_terminated(runs["t_00001"], status="FINISHED")  # its loop ended it: untouched

    closed = study_tracking.kill_trial_runs(uri, "studies", parent, "interrupted (SIGTERM)")

    assert closed == {"t_00000": "KILLED"}
    killed = client.get_run(runs["t_00000"])
    assert killed.info.status == "KILLED" and killed.data.tags[TAG_ERROR] == "interrupted (SIGTERM)"
    assert client.get_run(runs["t_00001"]).info.status == "FINISHED"
    assert TAG_ERROR not in client.get_run(runs["t_00001"]).data.tags


def test_resume_closes_left_open_runs_by_tunes_saved_status_and_keeps_the_ones_tune_continues(tmp_path):
    trials = {"t_00000": 1, "t_00001": 3, "t_00002": 1, "t_00003": 1, "t_00004": 1}
    uri, client, parent, runs = _study_with_children(tmp_path, trials)
    statuses = {"t_00000": "TERMINATED", "t_00001": "TERMINATED", "t_00002": "ERROR", "t_00003": "RUNNING"}
    # t_00004: started after Tune's last snapshot of its state (a SIGKILL right after it started)

    closed = study_tracking.close_left_open_runs(uri, "studies", parent, statuses, max_epochs=3)

    assert closed == {"t_00000": "FINISHED", "t_00001": "FINISHED", "t_00002": "FAILED", "t_00004": "KILLED"}
    get = lambda trial: client.get_run(runs[trial])  # noqa: E731
    assert all(TAG_LEFT_OPEN in get(t).data.tags and get(t).data.tags["raysys.closed_by"] == "resume" for t in closed)
    assert get("t_00000").data.tags["raysys.stopped"] == "asha"  # stopped at epoch 1 of 3
    assert "raysys.stopped" not in get("t_00001").data.tags  # reached max_epochs
    assert get("t_00003").info.status == "RUNNING" and TAG_LEFT_OPEN not in get("t_00003").data.tags  # Tune resumes it

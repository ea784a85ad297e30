"""MLflow records of a study: one parent run per study; trials are its children.

The trials' child runs are created by ``raysys.train.fit`` (tag ``mlflow.parentRunId`` from
``TrackingSpec.parent_run_id``, run name = Tune trial id). This module owns the parent run and
ends whatever child run a trial's own loop could not end (ASHA stopped it, it errored, the
driver was interrupted or killed), through ``MlflowClient`` so nothing depends on a
process-global active run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Mapping

from mlflow import MlflowClient
from mlflow.entities import Run, RunStatus

from raysys.names import (
    EPOCH,
    TAG_BEST_TRIAL,
    TAG_CHAMPION,
    TAG_CLOSED_BY,
    TAG_ERROR,
    TAG_LEFT_OPEN,
    TAG_REGISTERED_VERSION,
    TAG_ROLE,
    TAG_STOPPED,
    TAG_STOPPED_EPOCH,
)
from raysys.tracking import PARENT_TAG, get_or_create_experiment

MAX_PARAM_CHARS = 6000  # MLflow's param value limit is 6000 characters
MAX_TAG_CHARS = 5000
RUN_NAME_TAG = "mlflow.runName"


def start_parent_run(
    tracking_uri: str, experiment: str, name: str, params: Mapping[str, Any], tags: Mapping[str, str], space_text: str
) -> str:
    """Create the study's parent run (params = the study design); returns its id."""
    client = MlflowClient(tracking_uri)
    # raysys.tracking's helper keeps a sqlite backend's artifacts beside its database (not ./mlruns).
    experiment_id = get_or_create_experiment(client, experiment, tracking_uri)
    run = client.create_run(experiment_id, run_name=name, tags={TAG_ROLE: "study", **tags})
    run_id = run.info.run_id
    for key, value in params.items():
        client.log_param(run_id, key, str(value)[:MAX_PARAM_CHARS])
    if space_text:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "search_space.md"
            path.write_text(space_text)
            client.log_artifact(run_id, str(path))
    return run_id


def reopen_parent_run(tracking_uri: str, run_id: str) -> None:
    """``--resume``: the parent runs again; the reason it stopped last time no longer applies."""
    client = MlflowClient(tracking_uri)
    if TAG_ERROR in client.get_run(run_id).data.tags:
        client.delete_tag(run_id, TAG_ERROR)
    client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))


def end_parent_run(tracking_uri: str, run_id: str, status: str = "FINISHED", error: str | None = None) -> None:
    """End the parent run ``FINISHED`` / ``FAILED`` / ``KILLED``; ``error`` becomes the tag ``raysys.error``."""
    client = MlflowClient(tracking_uri)
    if error:
        client.set_tag(run_id, TAG_ERROR, error[:MAX_TAG_CHARS])
    client.set_terminated(run_id, status=status)


def find_trial_run(tracking_uri: str, experiment: str, parent_run_id: str, trial_id: str | None) -> str | None:
    """The child run of ``trial_id`` under the study's parent run, if fit created one."""
    if not trial_id:
        return None
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}' and tags.`{RUN_NAME_TAG}` = '{trial_id}'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def log_outcome(tracking_uri: str, run_id: str, outcome: Any) -> None:
    """Best trial, its objective and the errored trials (with reasons) on the parent run."""
    client = MlflowClient(tracking_uri)
    client.log_metric(run_id, "study/trials", outcome.trials)
    client.log_metric(run_id, "study/errored_trials", len(outcome.errored))
    if outcome.best_objective is not None:
        client.log_metric(run_id, "study/best_objective", outcome.best_objective)
        client.set_tag(run_id, TAG_BEST_TRIAL, str(outcome.best_trial))
    for trial_id, reason in outcome.errored.items():
        client.set_tag(run_id, f"{TAG_ERROR}.{trial_id}", reason[:MAX_TAG_CHARS])


def log_champion(tracking_uri: str, run_id: str, publication: Any) -> None:
    client = MlflowClient(tracking_uri)
    client.set_tag(run_id, TAG_REGISTERED_VERSION, f"{publication.name}/{publication.version}")
    client.set_tag(run_id, TAG_CHAMPION, str(publication.is_champion))


def log_pareto_front(tracking_uri: str, run_id: str, front: list[dict[str, Any]], text: str, artifact_file: str) -> None:
    """Multi-objective studies: the Pareto trials as the artifact ``artifact_file`` (``text``: the
    values and params of each, as the study dir keeps them), the tag ``raysys.pareto_trials``
    (their Tune trial ids, comma-separated) and the metric ``study/pareto_trials`` (how many)."""
    client = MlflowClient(tracking_uri)
    client.log_text(run_id, text, artifact_file)
    names = [str(t.get("tune_trial_id") or f"optuna#{t['number']}") for t in front]
    client.set_tag(run_id, "raysys.pareto_trials", ",".join(names)[:MAX_TAG_CHARS])
    client.log_metric(run_id, "study/pareto_trials", len(front))


# --- ending child runs ------------------------------------------------------------------------
def _open_child_runs(client: MlflowClient, experiment: str, parent_run_id: str) -> list[Run]:
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}' and attributes.status = 'RUNNING'",
    )


def _trial_of(run: Run) -> str:
    return run.data.tags.get(RUN_NAME_TAG) or run.info.run_name


def _end_child(client: MlflowClient, run: Run, status: str, tags: Mapping[str, str]) -> None:
    for key, value in tags.items():
        client.set_tag(run.info.run_id, key, str(value)[:MAX_TAG_CHARS])
    client.set_terminated(run.info.run_id, status=status)


def _finished_tags(run: Run, max_epochs: int) -> dict[str, str]:
    """A trial ended from outside its loop before ``max_epochs``: ASHA stopped it at its last epoch."""
    epoch = int(run.data.metrics.get(EPOCH, 0))
    return {TAG_STOPPED: "asha", TAG_STOPPED_EPOCH: str(epoch)} if epoch < max_epochs else {}


def close_trial_runs(tracking_uri: str, experiment: str, parent_run_id: str, errored: Mapping[str, str],
                     max_epochs: int) -> dict[str, str]:
    """End every child run of the study still RUNNING once Tune is done: a trial that errored
    becomes FAILED (tag ``raysys.error`` = the reason); any other was stopped from outside its
    loop (ASHA ends a trial's process, so its loop never closes the run): FINISHED, tagged
    ``raysys.stopped=asha`` and ``raysys.stopped_epoch`` (its last logged epoch).
    Returns {trial id: new status}."""
    client = MlflowClient(tracking_uri)
    closed: dict[str, str] = {}
    for run in _open_child_runs(client, experiment, parent_run_id):
        trial = _trial_of(run)
        if trial in errored:
            status, tags = "FAILED", {TAG_ERROR: errored[trial]}
        else:  # a trial at max_t, too, is ended by the scheduler before its loop closes it
            status, tags = "FINISHED", _finished_tags(run, max_epochs)
        _end_child(client, run, status, {**tags, TAG_CLOSED_BY: "study"})
        closed[trial] = status
    return closed


def kill_trial_runs(tracking_uri: str, experiment: str, parent_run_id: str, reason: str) -> dict[str, str]:
    """The driver stops before Tune finished (Ctrl-C, SIGTERM, an exception): end every child run
    still RUNNING as KILLED (tag ``raysys.error`` = why). A later ``--resume`` that continues the
    trial reopens its run (``RunTracker`` finds it by name). Returns {trial id: "KILLED"}."""
    client = MlflowClient(tracking_uri)
    closed: dict[str, str] = {}
    for run in _open_child_runs(client, experiment, parent_run_id):
        _end_child(client, run, "KILLED", {TAG_ERROR: reason, TAG_CLOSED_BY: "study"})
        closed[_trial_of(run)] = "KILLED"
    return closed


def close_left_open_runs(tracking_uri: str, experiment: str, parent_run_id: str, tune_statuses: Mapping[str, str],
                         max_epochs: int) -> dict[str, str]:
    """On ``--resume``, before Tune restarts: end the child runs a killed driver left RUNNING whose
    trial Tune will not continue, by the trial's status in Tune's saved state: TERMINATED ->
    FINISHED (ASHA tags as in ``close_trial_runs``), ERROR -> FAILED, unknown to Tune (started
    after its last snapshot) -> KILLED. Each gets ``raysys.left_open`` and
    ``raysys.closed_by=resume``; runs of trials Tune resumes stay open. Returns {trial id: status}."""
    client = MlflowClient(tracking_uri)
    closed: dict[str, str] = {}
    for run in _open_child_runs(client, experiment, parent_run_id):
        trial = _trial_of(run)
        tune_status = tune_statuses.get(trial)
        if tune_status == "TERMINATED":
            status, tags = "FINISHED", _finished_tags(run, max_epochs)
        elif tune_status == "ERROR":
            status, tags = "FAILED", {TAG_ERROR: "trial errored (see the study's raysys.error.<trial> tag)"}
        elif tune_status is None:
            status, tags = "KILLED", {}
        else:
            continue  # PENDING / RUNNING / PAUSED: Tune continues the trial and its run
        why = f"the study driver stopped while this run was open; Tune's saved state says {tune_status or 'no such trial'}"
        _end_child(client, run, status, {**tags, TAG_LEFT_OPEN: why, TAG_CLOSED_BY: "resume"})
        closed[trial] = status
    return closed

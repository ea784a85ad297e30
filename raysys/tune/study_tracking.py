"""MLflow records of a study: one parent run per study; trials are its children.

The trials' child runs are created by ``raysys.train.fit`` (tag ``mlflow.parentRunId`` from
``TrackingSpec.parent_run_id``, run name = Tune trial id). This module owns the parent run only,
through ``MlflowClient`` so nothing depends on a process-global active run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Mapping

from mlflow import MlflowClient
from mlflow.entities import RunStatus

from raysys.tracking import get_or_create_experiment

MAX_PARAM_CHARS = 6000  # MLflow's param value limit is 6000 characters


def start_parent_run(
    tracking_uri: str, experiment: str, name: str, params: Mapping[str, Any], tags: Mapping[str, str], space_text: str
) -> str:
    """Create the study's parent run (params = the study design); returns its id."""
    client = MlflowClient(tracking_uri)
    # raysys.tracking's helper keeps a sqlite backend's artifacts beside its database (not ./mlruns).
    experiment_id = get_or_create_experiment(client, experiment, tracking_uri)
    run = client.create_run(experiment_id, run_name=name, tags={"raysys.role": "study", **tags})
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
    MlflowClient(tracking_uri).update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))


def end_parent_run(tracking_uri: str, run_id: str, status: str = "FINISHED") -> None:
    MlflowClient(tracking_uri).set_terminated(run_id, status=status)


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
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.mlflow.runName = '{trial_id}'",
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
        client.set_tag(run_id, "raysys.best_trial", str(outcome.best_trial))
    for trial_id, reason in outcome.errored.items():
        client.set_tag(run_id, f"raysys.error.{trial_id}", reason[:5000])


def log_champion(tracking_uri: str, run_id: str, publication: Any) -> None:
    client = MlflowClient(tracking_uri)
    client.set_tag(run_id, "raysys.registered_version", f"{publication.name}/{publication.version}")
    client.set_tag(run_id, "raysys.champion", str(publication.is_champion))


def log_pareto_front(tracking_uri: str, run_id: str, front: list[dict[str, Any]], path: Path) -> None:
    """Multi-objective studies: the Pareto trials as the artifact ``pareto_front.json`` (values and
    params of each), the tag ``raysys.pareto_trials`` (their Tune trial ids, comma-separated) and
    the metric ``study/pareto_trials`` (how many)."""
    client = MlflowClient(tracking_uri)
    client.log_artifact(run_id, str(path))
    names = [str(t.get("tune_trial_id") or f"optuna#{t['number']}") for t in front]
    client.set_tag(run_id, "raysys.pareto_trials", ",".join(names)[:5000])
    client.log_metric(run_id, "study/pareto_trials", len(front))


def close_trial_runs(tracking_uri: str, experiment: str, parent_run_id: str, errored: Mapping[str, str],
                     max_epochs: int) -> dict[str, str]:
    """End every child run of the study still RUNNING once Tune is done: a trial that errored
    becomes FAILED (tag ``raysys.error`` = the reason); any other was stopped from outside its
    loop (ASHA ends a trial's process, so its loop never closes the run): FINISHED, tagged
    ``raysys.stopped=asha`` and ``raysys.stopped_epoch`` (its last logged epoch).
    Returns {trial id: new status}."""
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return {}
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}' and attributes.status = 'RUNNING'",
    )
    closed: dict[str, str] = {}
    for run in runs:
        trial = run.data.tags.get("mlflow.runName") or run.info.run_name
        if trial in errored:
            client.set_tag(run.info.run_id, "raysys.error", errored[trial][:5000])
            status = "FAILED"
        else:
            epoch = int(run.data.metrics.get("epoch", 0))
            if epoch < max_epochs:
                client.set_tag(run.info.run_id, "raysys.stopped", "asha")
                client.set_tag(run.info.run_id, "raysys.stopped_epoch", str(epoch))
            status = "FINISHED"  # a trial at max_t, too, is ended by the scheduler before its loop closes it
        client.set_tag(run.info.run_id, "raysys.closed_by", "study")
        client.set_terminated(run.info.run_id, status=status)
        closed[trial] = status
    return closed

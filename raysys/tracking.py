"""A thin MLflow adapter: the only module of raysys that talks to MLflow's tracking API.

Used by the train loop (rank 0) and by Tune. Design:

* ``resolve_tracking_uri``: a flag, else ``MLFLOW_TRACKING_URI``, else
  ``sqlite:////<abs cwd>/mlflow.db``. Resolve on the driver: Ray workers ``chdir``.
* ``RunTracker.open``: get-or-create ONE MLflow run per logical run name. The run is found by
  the tag ``raysys.run_name`` (and ``mlflow.parentRunId`` when nested), so a restarted or
  re-launched training run keeps logging into the same MLflow run.
* Params are immutable in MLflow: on a re-launch with changed values the original param is
  kept and the new value is recorded as the tag ``relaunched.<key>``.
* ``log_metrics(metrics, step)`` is idempotent per step: a step that already holds a value for
  the ``step_key`` metric (default ``epoch``) is skipped, so a resumed run logs no duplicates.
* For a sqlite backend, new experiments keep artifacts next to the database
  (``<db dir>/mlartifacts``) rather than under the process's working directory.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from raysys.names import TAG_RUN_NAME

PARENT_TAG = "mlflow.parentRunId"
# MLflow's limits per log_batch call and per param value.
_MAX_PARAMS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000
_MAX_PARAM_LENGTH = 6000


def resolve_tracking_uri(uri: str | None = None, default_dir: str | Path | None = None) -> str:
    """The tracking URI to use: ``uri``, else ``MLFLOW_TRACKING_URI``, else ``<dir>/mlflow.db``.

    ``<dir>`` is ``default_dir`` (a study keeps its database beside its storage) or the cwd.
    A bare filesystem path is turned into ``sqlite:////<abs path>`` when it ends in ``.db``.
    The one resolver of raysys: call it on the driver, since Ray workers ``chdir``.
    """
    fallback = Path(default_dir).expanduser() if default_dir is not None else Path.cwd()
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or str(fallback / "mlflow.db")
    if "://" in uri or uri.startswith("databricks"):
        return uri
    if uri.endswith(".db"):
        return "sqlite:///" + str(Path(uri).resolve())  # -> sqlite:////abs/path.db
    raise ValueError(f"tracking URI {uri!r} is neither a URI (scheme://...) nor a path to a .db file")


def _sqlite_artifact_root(uri: str) -> str | None:
    if uri.startswith("sqlite:///"):
        db_path = Path(uri[len("sqlite:///"):])
        return (db_path.parent / "mlartifacts").resolve().as_uri()
    return None


def get_or_create_experiment(client: MlflowClient, name: str, tracking_uri: str) -> str:
    """The id of experiment ``name``, creating it (race-safe) if needed."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=_sqlite_artifact_root(tracking_uri))
    except MlflowException:
        # Another process (a parallel Tune trial) created it between our two calls.
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


class RunTracker:
    """One MLflow run, addressed by a logical run name; every call is a direct client call."""

    def __init__(self, client: MlflowClient, run_id: str, step_key: str = "epoch"):
        self.client = client
        self.run_id = run_id
        self.step_key = step_key
        self._logged_steps = {m.step for m in client.get_metric_history(run_id, step_key)}

    @classmethod
    def open(
        cls,
        run_name: str,
        *,
        tracking_uri: str,
        experiment: str = "raysys",
        parent_run_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
        step_key: str = "epoch",
    ) -> "RunTracker":
        """Get or create the run tagged ``raysys.run_name=run_name`` (under ``parent_run_id``)."""
        if not run_name:
            raise ValueError("run_name must be a non-empty string")
        client = MlflowClient(tracking_uri=tracking_uri)
        experiment_id = get_or_create_experiment(client, experiment, tracking_uri)
        filters = [f"tags.`{TAG_RUN_NAME}` = '{_quote(run_name)}'"]
        if parent_run_id:
            filters.append(f"tags.`{PARENT_TAG}` = '{_quote(parent_run_id)}'")
        found = client.search_runs([experiment_id], filter_string=" and ".join(filters), max_results=2, order_by=["attributes.start_time ASC"])
        all_tags = {TAG_RUN_NAME: run_name, **{k: str(v) for k, v in (tags or {}).items()}}
        if parent_run_id:
            all_tags[PARENT_TAG] = parent_run_id
        if found:
            run_id = found[0].info.run_id
            if found[0].info.status != "RUNNING":
                client.update_run(run_id, status="RUNNING")
            client.log_batch(run_id, tags=[RunTag(k, v) for k, v in all_tags.items()])
        else:
            run_id = client.create_run(experiment_id, tags=all_tags, run_name=run_name).info.run_id
        return cls(client, run_id, step_key=step_key)

    # --- params and tags ----------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log flat params; values already logged differently become ``relaunched.<key>`` tags."""
        existing = self.client.get_run(self.run_id).data.params
        new: list[Param] = []
        changed: list[RunTag] = []
        for key, value in params.items():
            text = str(value)[:_MAX_PARAM_LENGTH]
            if key not in existing:
                new.append(Param(key, text))
            elif existing[key] != text:
                changed.append(RunTag(f"relaunched.{key}", text))
        for i in range(0, len(new), _MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=new[i : i + _MAX_PARAMS_PER_BATCH])
        if changed:
            self.client.log_batch(self.run_id, tags=changed)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if tags:
            self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    # --- metrics ------------------------------------------------------------------------
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> bool:
        """Log numeric ``metrics`` at ``step`` unless that step was already logged; returns whether logged."""
        if step in self._logged_steps:
            return False
        now = int(time.time() * 1000)
        entries = [Metric(k, float(v), now, step) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        # The step key goes last so a crash mid-way never marks a step as complete.
        entries.sort(key=lambda m: m.key == self.step_key)
        for i in range(0, len(entries), _MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=entries[i : i + _MAX_METRICS_PER_BATCH])
        self._logged_steps.add(step)
        return True

    # --- artifacts ----------------------------------------------------------------------
    def log_figure(self, figure: Any, artifact_file: str) -> None:
        """Save a matplotlib figure as an artifact (e.g. ``figures/synthesis.png``)."""
        self.client.log_figure(self.run_id, figure, artifact_file)

    def log_dict(self, data: Any, artifact_file: str) -> None:
        self.client.log_dict(self.run_id, data, artifact_file)

    def log_file(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    # --- status -------------------------------------------------------------------------
    def finish(self, status: str = "FINISHED") -> None:
        """Mark the run ``FINISHED`` / ``FAILED`` / ``KILLED``."""
        self.client.set_terminated(self.run_id, status=status)

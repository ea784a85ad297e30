"""Reading a finished (or interrupted) study from Tune: the best trial, the errors, trial states.

Errors are read from the exception objects Ray hands back, not from their text: a trial's
``Result.error`` is a ``RayTaskError`` whose ``cause`` is what the trial driver raised; when
that is a Ray Train failure, ``WorkerGroupError.worker_failures`` (rank -> exception) and
``ControllerError.controller_failure`` hold the real one.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from ray import tune
from ray.exceptions import RayTaskError
from ray.train import ControllerError, WorkerGroupError

from raysys.names import OBJECTIVE
from raysys.tune.study_dir import StudyDir
from raysys.tune.trainable import CHECKPOINT_KEY  # reported by every trial

PARETO_FILE = "pareto_front.json"
TRIAL_ID_KEY = "trial_id"  # Tune adds it to every reported result
# Tune's statuses of a trial that will not run again (Trial.TERMINATED / Trial.ERROR).
ENDED_STATUSES = ("TERMINATED", "ERROR")


@dataclasses.dataclass
class StudyOutcome:
    """What a finished study produced (the job prints it)."""

    study_dir: str  # a local path or a URL (s3://...)
    parent_run_id: str
    tracking_uri: str
    trials: int
    errored: dict[str, str]  # trial id -> "<ExceptionType>: <first line of its message>"
    best_trial: str | None = None
    best_objective: float | None = None
    best_config: dict[str, Any] | None = None
    best_checkpoint: str | None = None
    champion: Any = None  # raysys.registry.champion.Publication
    objectives: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # [(metric, mode)], primary first
    pareto_front: list[dict[str, Any]] | None = None  # multi-objective only: ``optuna_adapter.pareto_front``

    @property
    def failure(self) -> str | None:
        """Why the study as a whole failed (no trial gave a finite objective); None if it did not."""
        if self.best_trial is not None:
            return None
        if self.errored:
            first = next(iter(self.errored.items()))
            return f"all {self.trials} trials failed ({len(self.errored)} errored); {first[0]}: {first[1]}"[:5000]
        return f"none of the {self.trials} trials reported a finite {OBJECTIVE}"


def root_error(error: BaseException) -> BaseException:
    """The exception that actually ended a trial, under Ray's and Ray Train's wrappers."""
    seen: set[int] = set()
    while id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, WorkerGroupError) and error.worker_failures:
            error = error.worker_failures[min(error.worker_failures)]  # the lowest failing rank
        elif isinstance(error, ControllerError):
            error = error.controller_failure
        elif isinstance(error, RayTaskError) and error.cause is not None:
            error = error.cause
        else:
            break
    return error


def error_reason(error: BaseException) -> str:
    """``"<ExceptionType>: <first line of its message>"`` of the root error (at most 500 chars)."""
    root = root_error(error)
    message = next((line.strip() for line in str(root).splitlines() if line.strip()), "")
    return (f"{type(root).__name__}: {message}" if message else type(root).__name__)[:500]


def trial_name(result: tune.Result) -> str:
    """The Tune trial id of a result (what trials' Train and MLflow runs are named by).

    Trial directories are named ``<trainable>_<experiment tag>_<index>_<params...>``; the trial
    id is ``<experiment tag>_<index>``, which also names results that never reported metrics.
    """
    if (result.metrics or {}).get(TRIAL_ID_KEY):
        return str(result.metrics[TRIAL_ID_KEY])
    parts = Path(result.path).name.split("_")
    for i in range(len(parts) - 1):
        if len(parts[i + 1]) == 5 and parts[i + 1].isdigit():
            return f"{parts[i]}_{parts[i + 1]}"
    return Path(result.path).name


def completed(results: tune.ResultGrid) -> bool:
    """Whether every trial ended (TERMINATED or ERROR): False after Tune stopped on Ctrl-C/SIGINT,
    which returns the results of a study it has not finished rather than raising."""
    return results.num_terminated + results.num_errors == len(results)


def trial_statuses(study_dir: StudyDir) -> dict[str, str]:
    """{trial id: Tune status} from the study's saved experiment state (what ``--resume`` restores)."""
    from ray.tune import ExperimentAnalysis

    return {trial.trial_id: trial.status for trial in ExperimentAnalysis(study_dir.url).trials}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def summarise(results: tune.ResultGrid, mode: str, study_dir: StudyDir, parent_run_id: str, tracking_uri: str) -> StudyOutcome:
    """The best trial by ``objective`` (among its kept checkpoints) and the errored trials' reasons.

    ``best_checkpoint`` is a path or URL (``StudyDir.find``: Ray reports checkpoints on object
    storage without their scheme)."""
    errored: dict[str, str] = {}
    best: tuple[float, str, dict, str | None] | None = None
    sign = 1.0 if mode == "max" else -1.0
    for result in results:
        if result.error is not None:
            errored[trial_name(result)] = error_reason(result.error)
        frame = result.metrics_dataframe
        if frame is None or OBJECTIVE not in frame:
            continue
        rows = frame[frame[OBJECTIVE].map(_finite)]
        found: dict[str, str | None] = {}
        if CHECKPOINT_KEY in rows:  # only the kept (best) checkpoints are still there
            found = {p: study_dir.find(p) for p in rows[CHECKPOINT_KEY] if isinstance(p, str) and p}
            kept = rows[rows[CHECKPOINT_KEY].map(lambda p: found.get(p) is not None)]
            rows = kept if not kept.empty else rows
        if rows.empty:
            continue
        row = rows.loc[(rows[OBJECTIVE] * sign).idxmax()]
        value = float(row[OBJECTIVE])
        reported = row.get(CHECKPOINT_KEY) if CHECKPOINT_KEY in rows else None
        checkpoint = (found.get(reported) or reported) if isinstance(reported, str) and reported else None
        if best is None or sign * value > sign * best[0]:
            best = (value, trial_name(result), dict(result.config or {}), checkpoint)
    outcome = StudyOutcome(study_dir.url, parent_run_id, tracking_uri, trials=len(results), errored=errored)
    if best is not None:
        outcome.best_objective, outcome.best_trial, outcome.best_config, outcome.best_checkpoint = best
    return outcome

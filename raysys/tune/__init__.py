"""Hyperparameter studies: Ray Tune over the Train trial driver, Optuna TPE, ASHA, MLflow, registry.

``run_study(StudySpec(...))`` runs or resumes a study. Modules, one job each:
``spec`` (what defines a study), ``run`` (orchestration), ``trainable`` (the trial driver),
``optuna_adapter`` (the searcher and the Optuna study), ``results`` (best trial, errors),
``study_tracking`` (the MLflow parent run, ending child runs), ``space`` (search spaces, ``--fix``),
``cli`` (``jobs/tune_<family>.py``). The search spaces live in ``search_spaces/``;
``raysys.registry.champion`` registers the best checkpoint and moves ``champion`` only on improvement.
"""

from raysys.tune.results import StudyOutcome
from raysys.tune.run import run_study
from raysys.tune.space import FixedSpace, load_space
from raysys.tune.spec import STUDY_EXPERIMENT, StudyError, StudySpec

__all__ = ["STUDY_EXPERIMENT", "FixedSpace", "StudyError", "StudyOutcome", "StudySpec", "load_space", "run_study"]

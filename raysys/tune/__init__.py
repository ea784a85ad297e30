"""Hyperparameter studies: Ray Tune over the Train trial driver, Optuna TPE, ASHA, MLflow, registry.

``run_study(StudySpec(...))`` runs or resumes a study (``raysys.tune.study``); the search spaces
live in ``search_spaces/``; ``raysys.tune.champion`` registers the best checkpoint and moves the
``champion`` alias only on improvement; ``jobs/tune_<family>.py`` is the command line.
"""

from raysys.tune.space import FixedSpace, load_space
from raysys.tune.study import StudyError, StudyOutcome, StudySpec, run_study

__all__ = ["FixedSpace", "StudyError", "StudyOutcome", "StudySpec", "load_space", "run_study"]

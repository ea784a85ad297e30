"""The Optuna side of a study: the searcher Tune drives, the study's database, its Pareto front.

The database is any SQLAlchemy URL (``StudySpec.optuna_url``): by default a sqlite file in the
study dir, on a cluster whose study dir is on object storage a database server's (never MLflow's).

Search (``StudySpec.search``): "tpe" or "random" is only the Optuna sampler behind the same
``OptunaSearch`` over the same define-by-run space (``search_spaces/<family>.py``). Tune's own
random search (``BasicVariantGenerator``) would need the space rewritten as a ``param_space``
dict, with the conditional parameters (e.g. the KL warm-up that exists only for L >= 3) as
``sample_from`` lambdas: a second definition to keep in step. With Optuna's ``RandomSampler``
the space is written once, random trials land in the same Optuna study (first points, ``--fix``,
``--resume``, the Pareto front and the orphan marking work alike) and the comparison with TPE
changes the sampler and nothing else. Note: a seeded TPE samples its first
``tpe_startup_trials`` trials (``--tpe-startup-trials``, default ``TPE_STARTUP_TRIALS`` = 10,
first points included) with ``RandomSampler(seed)`` itself, so in a study of up to that many
trials TPE and random search draw the same configurations.

Every use of a private Optuna or ``OptunaSearch`` attribute in raysys is in this file
(``OptunaSearch._ot_trials``, ``OptunaSearch._sampler``, ``FrozenTrial._trial_id``), so an
upgrade that renames one touches one module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import optuna
from ray.tune.search.optuna import OptunaSearch

from raysys.tune.spec import TPE_STARTUP_TRIALS

TUNE_TRIAL_ATTR = "raysys.tune_trial_id"  # user attr of each Optuna trial: its Tune trial id
ORPHANED_ATTR = "raysys.orphaned"


def optuna_storage(url: str) -> optuna.storages.RDBStorage:
    """The Optuna storage at the database ``url`` (``StudySpec.optuna_url``)."""
    return optuna.storages.RDBStorage(url)


def study_exists(url: str, name: str) -> bool:
    """Whether the database at ``url`` holds an Optuna study ``name`` (a missing sqlite file holds none)."""
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return False
    return name in optuna.study.get_all_study_names(storage=optuna_storage(url))


class TaggedOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that records each Optuna trial's Tune trial id (user attr
    ``raysys.tune_trial_id``), so the Pareto front names the trials as MLflow and Tune do."""

    def suggest(self, trial_id: str):
        params = super().suggest(trial_id)
        ot_trial = self._ot_trials.get(trial_id)
        if params is not None and ot_trial is not None and TUNE_TRIAL_ATTR not in ot_trial.user_attrs:
            ot_trial.set_user_attr(TUNE_TRIAL_ATTR, trial_id)
        return params

    @property
    def sampler(self) -> optuna.samplers.BaseSampler:
        """The Optuna sampler this searcher asks (``make_sampler``'s)."""
        return self._sampler


def make_sampler(search: str, seed: int, tpe_startup_trials: int = TPE_STARTUP_TRIALS) -> optuna.samplers.BaseSampler:
    """The seeded Optuna sampler of ``StudySpec.search``: "tpe" -> ``TPESampler`` (random for its
    first ``tpe_startup_trials``), "random" -> ``RandomSampler``."""
    if search == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=tpe_startup_trials)
    if search == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown search {search!r}; known: tpe, random")


def make_searcher(
    space: Callable[[optuna.Trial], Mapping[str, Any] | None],
    objectives: Sequence[tuple[str, str]],
    *,
    first_points: list[dict[str, Any]],
    seed: int,
    study_name: str,
    storage_url: str,
    search: str = "tpe",
    tpe_startup_trials: int = TPE_STARTUP_TRIALS,
) -> TaggedOptunaSearch:
    """A seeded searcher (``make_sampler(search, seed, tpe_startup_trials)``) over the define-by-run ``space``, storing
    its study in the database ``storage_url``; ``first_points`` are evaluated first whatever the sampler.

    Several ``objectives`` ([(metric, mode)], primary first) give metric/mode LISTS, so the Optuna
    study gets one direction per objective (TPE and random search handle several); one gives a plain study.
    """
    multi = len(objectives) > 1
    return TaggedOptunaSearch(
        space=space,
        metric=[name for name, _ in objectives] if multi else objectives[0][0],
        mode=[mode for _, mode in objectives] if multi else objectives[0][1],
        points_to_evaluate=first_points or None,
        sampler=make_sampler(search, seed, tpe_startup_trials),
        study_name=study_name,
        storage=optuna_storage(storage_url),
    )


def pareto_front(storage_url: str, name: str, objective_names: list[str]) -> list[dict[str, Any]]:
    """The Optuna study's Pareto-optimal trials (``study.best_trials``), each as
    ``{"number", "tune_trial_id", "values": {metric: value}, "params"}``, ordered by number."""
    study = optuna.load_study(study_name=name, storage=optuna_storage(storage_url))
    return [
        {
            "number": trial.number,
            "tune_trial_id": trial.user_attrs.get(TUNE_TRIAL_ATTR),
            "values": dict(zip(objective_names, trial.values)),
            "params": dict(trial.params),
        }
        for trial in sorted(study.best_trials, key=lambda t: t.number)
    ]


def mark_orphaned_trials(storage_url: str, name: str) -> int:
    """Optuna trials still RUNNING after Tune finished were asked by a driver that was killed
    before Tune recorded the trial; mark them FAIL (tagged) so the study's history stays true."""
    storage = optuna_storage(storage_url)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return 0
    orphans = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.RUNNING]
    for trial in orphans:
        storage.set_trial_user_attr(trial._trial_id, ORPHANED_ATTR, "driver stopped before Tune started it")
        storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    return len(orphans)

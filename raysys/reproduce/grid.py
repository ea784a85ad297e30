"""The Ray Tune grid of an experiment: every run of the plan x every seed (``tune.grid_search``),
no search algorithm, no scheduler (so no early stopping), the same budget for every trial.

Trials go through ``raysys.reproduce.trial.run_variant``; resources as in a study
(``raysys.tune.trainable.trial_resources``: a one-worker trial on local storage trains in its own
process and holds the worker's CPUs/GPUs, so as many trials run at once as the cluster fits).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from raysys.reproduce.plan import SEED_KEY, Plan
from raysys.reproduce.trial import RUN_ID_KEY, VARIANT_KEY, GridContext, run_variant
from raysys.tune.trainable import TrialContext, runs_in_process, trial_resources


@dataclasses.dataclass
class TrialRecord:
    """One trained (or failed) run x seed, as the driver reads it back from Tune."""

    key: str
    seed: int
    trial_id: str
    run_id: str | None
    error: str | None


def run_grid(plan: Plan, seeds: list[int], context: TrialContext, name: str, storage: str) -> list[TrialRecord]:
    """Run every (run, seed) trial of ``plan`` to its end; returns one record per trial."""
    from ray import tune

    from raysys.tune.results import error_reason, trial_name
    from raysys.tune.run import driver_resources

    grid = GridContext(trial=context, runs={r.key: r.flat for r in plan.runs},
                       rows={r.key: tuple(r.labels) for r in plan.runs}, eval_slices=plan.budget.eval_slices)
    resources = trial_resources(context.scaling, context.train_storage, driver_resources())
    trainable = tune.with_resources(tune.with_parameters(run_variant, context=grid), resources)
    tuner = tune.Tuner(
        trainable,
        param_space={VARIANT_KEY: tune.grid_search([r.key for r in plan.runs]), SEED_KEY: tune.grid_search(seeds)},
        tune_config=tune.TuneConfig(num_samples=1, reuse_actors=runs_in_process(context.scaling, context.train_storage)),
        run_config=tune.RunConfig(name=name, storage_path=storage,
                                  failure_config=tune.FailureConfig(max_failures=0, fail_fast=False), verbose=1),
    )
    results = tuner.fit()
    records = []
    for result in results:
        config: dict[str, Any] = dict(result.config or {})
        metrics = result.metrics or {}
        records.append(TrialRecord(
            key=str(config.get(VARIANT_KEY)), seed=int(config.get(SEED_KEY, -1)), trial_id=trial_name(result),
            run_id=str(metrics.get(RUN_ID_KEY) or "") or None,
            error=error_reason(result.error) if result.error is not None else None,
        ))
    return sorted(records, key=lambda r: (r.key, r.seed))

"""--search and --scheduler: the spec fields, what they build, the CLI flags, and a real study
where no trial is stopped early and --resume refuses a changed choice."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import optuna
import pytest
import ray
import ray.cloudpickle
from mlflow import MlflowClient
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from raysys.config import ConfigError
from raysys.train import TrackingSpec, TrainConfig
from raysys.tune import StudyError, StudySpec, run_study
from raysys.tune.optuna_adapter import optuna_storage
from raysys.tune.run import STUDY_FILE, make_scheduler, make_study_searcher, study_params

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def spec(tmp_path, epochs=3, **kw) -> StudySpec:
    base = dict(name="s", storage=str(tmp_path / "studies"), trials=2, grace_epochs=1, concurrency=1, register=False,
                mode="max", tracking=TrackingSpec(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="t"))
    return StudySpec(train=TrainConfig(family="disentangle", epochs=epochs), **{**base, **kw})


def test_search_and_scheduler_default_to_tpe_and_asha_and_reject_other_values(tmp_path):
    default = spec(tmp_path)
    assert (default.search, default.scheduler) == ("tpe", "asha")
    chosen = dataclasses.replace(default, search="random", scheduler="none")
    assert (chosen.search, chosen.scheduler) == ("random", "none")
    with pytest.raises(ConfigError, match=r"study.search must be one of \['tpe', 'random'\], got 'grid'"):
        spec(tmp_path, search="grid")
    with pytest.raises(ConfigError, match=r"study.scheduler must be one of \['asha', 'none'\], got 'hyperband'"):
        spec(tmp_path, scheduler="hyperband")


def test_search_picks_the_sampler_of_the_one_define_by_run_space(tmp_path):
    for name in ("t", "r"):  # the Optuna study's sqlite file goes into the study dir
        (tmp_path / "studies" / name).mkdir(parents=True)
    tpe = make_study_searcher(spec(tmp_path, name="t"))
    assert type(tpe.sampler) is optuna.samplers.TPESampler
    random = make_study_searcher(spec(tmp_path, name="r", search="random"))
    assert type(random.sampler) is optuna.samplers.RandomSampler


def test_tpe_draws_what_random_search_draws_until_its_startup_trials_are_done():
    """The README's caveat: with one seed, TPE's first TPE_STARTUP_TRIALS trials (first point
    included) are random search's; only later trials differ."""
    from raysys.tune.optuna_adapter import TPE_STARTUP_TRIALS, make_sampler
    from raysys.tune.space import load_space

    space, first_points = load_space("mmhvae", preset="tiny", max_levels=6, epochs=4)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def draws(search: str) -> list[dict]:
        study = optuna.create_study(sampler=make_sampler(search, seed=0), direction="maximize")
        study.enqueue_trial(first_points[0])
        params = []
        for _ in range(TPE_STARTUP_TRIALS + 2):
            trial = study.ask()
            space(trial)
            study.tell(trial, -abs(trial.params["model.lr"] - 3e-3))  # TPE has something to model
            params.append(trial.params)
        return params

    tpe, random = draws("tpe"), draws("random")
    assert tpe[:TPE_STARTUP_TRIALS] == random[:TPE_STARTUP_TRIALS]
    assert tpe[TPE_STARTUP_TRIALS:] != random[TPE_STARTUP_TRIALS:]


def test_scheduler_none_is_fifo_and_asha_is_the_default(tmp_path):
    assert type(make_scheduler(spec(tmp_path, scheduler="none"))) is FIFOScheduler
    assert type(make_scheduler(spec(tmp_path))) is ASHAScheduler


def test_reduction_factor_and_tpe_startup_trials_reach_the_scheduler_and_sampler(tmp_path):
    from raysys.tune.spec import ASHA_REDUCTION_FACTOR, TPE_STARTUP_TRIALS, choice_defaults

    assert (choice_defaults()["reduction_factor"], choice_defaults()["tpe_startup_trials"]) == (
        ASHA_REDUCTION_FACTOR, TPE_STARTUP_TRIALS)  # what --resume compares an old study.json against
    default = spec(tmp_path, epochs=9)
    assert (default.reduction_factor, default.tpe_startup_trials) == (2, 10)
    assert make_scheduler(default)._reduction_factor == 2
    asha = make_scheduler(spec(tmp_path, epochs=9, reduction_factor=3))
    assert asha._reduction_factor == 3 and [m for m, _ in asha._brackets[0]._rungs] == [9, 3, 1]  # rungs 1, 3, max_t 9
    (tmp_path / "studies" / "t").mkdir(parents=True)
    searcher = make_study_searcher(spec(tmp_path, name="t", tpe_startup_trials=4))
    assert searcher.sampler._n_startup_trials == 4
    params = study_params(spec(tmp_path, reduction_factor=3, tpe_startup_trials=4), "store-id")
    assert params["study.reduction_factor"] == 3 and params["study.tpe_startup_trials"] == 4
    assert "reduction_factor=3" in params["study.early_stopping"] and "n_startup_trials=4" in params["study.sampler"]
    with pytest.raises(ConfigError, match=r"study.reduction_factor must be >= 2"):
        spec(tmp_path, reduction_factor=1)
    with pytest.raises(ConfigError, match=r"study.tpe_startup_trials must be >= 1"):
        spec(tmp_path, tpe_startup_trials=0)


def test_the_parent_run_params_record_both_choices(tmp_path):
    params = study_params(spec(tmp_path, search="random", scheduler="none"), "store-id")
    assert params["study.search"] == "random" and params["study.scheduler"] == "none"
    assert params["study.sampler"].startswith("optuna.RandomSampler(seed=0)")
    assert params["study.early_stopping"].startswith("none (FIFO")
    default = study_params(spec(tmp_path), "store-id")
    assert (default["study.search"], default["study.scheduler"]) == ("tpe", "asha")
    assert default["study.early_stopping"].startswith("ASHA(") and default["study.sampler"].startswith("optuna.TPESampler(")


def test_cli_flags_reach_the_study_spec(tiny_store, tmp_path, monkeypatch, capsys):
    import raysys.tune.cli
    import raysys.tune.run

    seen: list[StudySpec] = []

    def capture(study, resume=False):
        seen.append(study)
        raise StudyError("captured")  # stop before Tune: the spec is what is under test

    monkeypatch.setattr(raysys.tune.cli, "init_ray", lambda args, concurrency_hint: None)
    monkeypatch.setattr(raysys.tune.run, "run_study", capture)
    common = ["--data", tiny_store, "--storage", str(tmp_path / "studies"), "--tracking-uri",
              f"sqlite:///{tmp_path / 'mlflow.db'}", "--concurrency", "1", "--batch-size", "2", "--name", "x"]
    assert raysys.tune.cli.main("mmhvae", common + ["--search", "random", "--scheduler", "none"]) == 2
    assert raysys.tune.cli.main("mmhvae", common) == 2
    assert raysys.tune.cli.main("mmhvae", common + ["--reduction-factor", "3", "--tpe-startup-trials", "4"]) == 2
    assert [(s.search, s.scheduler) for s in seen] == [("random", "none"), ("tpe", "asha"), ("tpe", "asha")]
    assert [(s.reduction_factor, s.tpe_startup_trials) for s in seen] == [(2, 10), (2, 10), (3, 4)]
    with pytest.raises(SystemExit) as exit_info:
        raysys.tune.cli.main("mmhvae", common + ["--search", "grid"])
    assert exit_info.value.code == 2 and "invalid choice: 'grid'" in capsys.readouterr().err


def descending(config, context):
    """Each trial is worse than the one before at every epoch: ASHA (rf 2) stops the second at rung 1."""
    counter = Path(context.train_storage) / "order.txt"  # trials run one after another (concurrency 1)
    counter.parent.mkdir(parents=True, exist_ok=True)
    order = len(counter.read_text()) if counter.exists() else 0
    counter.write_text("x" * (order + 1))
    for epoch in range(context.train.epochs):
        tune.report({"objective": 10.0 - order + 0.1 * epoch, "epoch": epoch})


@pytest.mark.slow
def test_scheduler_none_runs_every_trial_to_the_end_and_resume_refuses_a_changed_search(tmp_path):
    from ray.tune import ExperimentAnalysis

    ray.init(address="local", num_cpus=2, resources={"trial_driver": 1}, include_dashboard=False, log_to_driver=False)
    try:
        runs = {}
        for scheduler in ("none", "asha"):
            s = spec(tmp_path / scheduler, search="random", scheduler=scheduler)
            outcome = run_study(s, trainable=descending)
            assert outcome.trials == 2 and not outcome.errored
            runs[scheduler] = (s, outcome)
            epochs = sorted(int(t.last_result["training_iteration"]) for t in ExperimentAnalysis(str(s.study_dir)).trials)
            # The same trials under ASHA lose the second at its first rung; without a scheduler both run 3 epochs.
            assert epochs == ([3, 3] if scheduler == "none" else [1, 3]), (scheduler, epochs)
        s, outcome = runs["none"]
        study = optuna.load_study(study_name="s", storage=optuna_storage(s.optuna_url))
        assert [t.state for t in study.get_trials()] == [optuna.trial.TrialState.COMPLETE] * 2
        recorded = json.loads(s.study_dir.read_text(STUDY_FILE))
        assert (recorded["search"], recorded["scheduler"]) == ("random", "none")
        params = MlflowClient(outcome.tracking_uri).get_run(outcome.parent_run_id).data.params
        assert (params["study.search"], params["study.scheduler"]) == ("random", "none")
        with pytest.raises(StudyError, match=r"^--search tpe: study 's' at .* was created with --search random; "
                                             r"resume with --search random$"):
            run_study(dataclasses.replace(s, search="tpe"), resume=True, trainable=descending)
        with pytest.raises(StudyError, match=r"^--scheduler asha: .*created with --scheduler none; resume with --scheduler none$"):
            run_study(dataclasses.replace(s, scheduler="asha"), resume=True, trainable=descending)
    finally:
        ray.shutdown()

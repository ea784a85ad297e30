"""Preset budgets: a study or training run without budget flags uses the preset's own budget,
and a study of such a preset evaluates the preset's own values first (fast, no Ray)."""

from __future__ import annotations

import pytest

from raysys.models import make_config, preset_budget
from raysys.train.cli import build_parser as train_parser
from raysys.train.cli import configs_from_args
from raysys.train import TrainConfig
from raysys.tune.cli import STUDY_EPOCHS, build_parser, resolve_budget
from raysys.tune.space import load_space

BUDGET_KEYS = {"epochs", "max_steps_per_epoch", "batch_size", "max_val_steps"}


@pytest.mark.parametrize("family", ["mmhvae", "disentangle"])
def test_cpu_preset_has_a_complete_budget_and_tiny_has_none(family):
    budget = preset_budget(family, "cpu")
    assert set(budget) == BUDGET_KEYS and all(isinstance(v, int) and v >= 1 for v in budget.values()), budget
    assert preset_budget(family, "tiny") == {}


def test_unknown_preset_is_named_in_the_error():
    with pytest.raises(ValueError, match="nope"):
        preset_budget("mmhvae", "nope")


@pytest.mark.parametrize("family", ["mmhvae", "disentangle"])
def test_study_flags_default_to_the_preset_budget_and_flags_win(family):
    parse = build_parser(family).parse_args
    budget = preset_budget(family, "cpu")
    assert resolve_budget(family, parse(["--preset", "cpu"])) == budget
    defaults = TrainConfig()  # a preset without a budget: TrainConfig's defaults, short study trials
    assert resolve_budget(family, parse(["--preset", "tiny"])) == {
        "epochs": STUDY_EPOCHS, "batch_size": defaults.batch_size, "max_steps_per_epoch": defaults.max_steps_per_epoch,
        "max_val_steps": defaults.max_val_steps}
    overridden = resolve_budget(family, parse(["--preset", "cpu", "--max-epochs", "1", "--batch-size", "2"]))
    assert overridden == {**budget, "epochs": 1, "batch_size": 2}


def test_train_job_uses_the_preset_budget_unless_told_otherwise():
    args = train_parser("mmhvae").parse_args(["--data", "/x", "--preset", "cpu"])
    train = configs_from_args("mmhvae", args)[0]
    budget = preset_budget("mmhvae", "cpu")
    assert (train.epochs, train.batch_size, train.max_steps_per_epoch, train.max_val_steps) == (
        budget["epochs"], budget["batch_size"], budget["max_steps_per_epoch"], budget["max_val_steps"])
    args = train_parser("mmhvae").parse_args(["--data", "/x", "--preset", "cpu", "--epochs", "1",
                                              "--set", "train.max_val_steps=3"])
    train = configs_from_args("mmhvae", args)[0]
    assert train.epochs == 1 and train.max_val_steps == 3 and train.batch_size == budget["batch_size"]


@pytest.mark.parametrize("family", ["mmhvae", "disentangle"])
def test_a_cpu_study_evaluates_the_presets_own_values_first(family):
    config = make_config(family, "cpu")
    _, points = load_space(family, preset="cpu", max_levels=getattr(config, "max_levels", None), epochs=5)
    assert len(points) == 1
    for key, value in points[0].items():
        if key.startswith("model."):
            assert getattr(config, key[len("model."):]) == pytest.approx(value), key
    assert points[0]["model.lr"] == config.lr


def test_study_with_a_batch_too_large_for_the_store_fails_before_ray(tiny_store, tmp_path, capsys):
    import ray

    from raysys.tune.cli import main

    code = main("mmhvae", ["--data", tiny_store, "--batch-size", "99", "--storage", str(tmp_path / "s"),
                           "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    assert code == 2 and "--batch-size 99" in capsys.readouterr().err
    assert not ray.is_initialized()

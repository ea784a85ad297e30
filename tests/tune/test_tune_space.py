"""Search spaces: conditional parameters, paper points, pinning (pure Optuna, fast)."""

from __future__ import annotations

import pickle

import optuna
import pytest

from raysys.names import TAG_SPACE
from raysys.train import ScalingSpec, TrackingSpec, TrainConfig
from raysys.tune.space import FixedSpace, load_space
from raysys.tune.trainable import TrialContext, trial_configs
from search_spaces import disentangle, mmhvae

optuna.logging.set_verbosity(optuna.logging.WARNING)


def ask(space, n: int, seed: int = 0, points=()) -> list[tuple[dict, dict]]:
    """(params Optuna recorded, params the space returned) of ``n`` trials."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed), direction="maximize")
    for point in points:
        study.enqueue_trial(point)
    out = []
    for _ in range(n):
        trial = study.ask()
        derived = space(trial) or {}
        out.append((dict(trial.params), derived))
        study.tell(trial, 0.0)
    return out


def sample(space, n: int, seed: int = 0, points=()) -> list[dict]:
    """The configurations a trial receives: recorded and derived params together."""
    return [{**recorded, **derived} for recorded, derived in ask(space, n, seed, points)]


def context(family: str, preset: str = "tiny") -> TrialContext:
    return TrialContext(train=TrainConfig(family=family, preset=preset), scaling=ScalingSpec(), tracking=TrackingSpec(),
                        train_storage="/unused")


def test_disentangle_conditionals_follow_their_switches():
    configs = sample(disentangle.space, 60)
    for c in configs:
        assert ("model.lambda_adv" in c) == (c["model.regulariser"] == "adv"), c
        assert ("model.n_experts" in c) == (c["model.encoder"] == "condconv"), c
    assert {c["model.regulariser"] for c in configs} == {"na", "adv", "sim"}
    assert {c["model.encoder"] for c in configs} == {"conv", "condconv"}
    assert {c["model.anatomy_channels"] for c in configs} == {4, 8}
    # the README's way back to the paper's C = 4 on the cpu preset: --fix model.anatomy_channels=4
    pinned = [{**r, **d} for r, d in ask(FixedSpace(disentangle.space, {"model.anatomy_channels": "4"}), 5)]
    assert [c["model.anatomy_channels"] for c in pinned] == [4] * 5


def test_mmhvae_depth_and_gan_switch_decide_their_parameters():
    configs = sample(mmhvae.space, 60)
    for c in configs:
        assert 1 <= c["model.levels"] <= mmhvae.MAX_LEVELS
        assert ("model.kl_warmup_epochs" in c) == (c["model.levels"] >= 3), c
        if c["gan"] == "off":
            assert c["model.lambda_gan"] == 0.0 and "model.gan_start_fraction" not in c and c["model.disc_start_fraction"] == 1.0
        else:
            assert 5e-3 <= c["model.lambda_gan"] <= 0.1 and 0.5 <= c["model.gan_start_fraction"] <= 0.9
    assert {c["model.levels"] for c in configs} == set(range(1, mmhvae.MAX_LEVELS + 1))


@pytest.mark.parametrize("family", ["mmhvae", "disentangle"])
def test_paper_points_are_evaluated_first_and_exactly(family):
    space, points = load_space(family)
    first = sample(space, 1, points=points)[0]
    for key, value in points[0].items():
        if key in first:
            assert first[key] == pytest.approx(value), key
    assert set(first) >= {k for k in points[0] if k != "model.kl_warmup_epochs" or first["model.levels"] >= 3}


def test_fixed_space_pins_values_and_samples_the_rest():
    pinned = FixedSpace(disentangle.space, {"regulariser": "adv", "model.lambda_adv": "0.3", "n_experts": 4})
    trials = ask(pinned, 20)
    configs = [{**recorded, **derived} for recorded, derived in trials]
    for (recorded, _), c in zip(trials, configs):
        assert c["model.regulariser"] == "adv" and c["model.lambda_adv"] == pytest.approx(0.3)
        assert c["model.n_experts"] == 4
        # Reached by the space (condconv): recorded by Optuna as a one-choice parameter; not
        # reached (conv): passed through as a constant the Optuna trial does not hold.
        assert ("model.n_experts" in recorded) == (c["model.encoder"] == "condconv"), recorded
    assert {c["model.encoder"] for c in configs} == {"conv", "condconv"}  # both branches were exercised
    assert len({c["model.lr"] for c in configs}) == len(configs)  # the rest is still sampled
    clone = pickle.loads(pickle.dumps(pinned))  # OptunaSearch pickles the space
    assert clone.fixed == pinned.fixed and clone.space is disentangle.space


def test_fixed_space_passes_unsampled_train_keys_and_drops_pinned_names_from_points():
    pinned = FixedSpace(mmhvae.space, {"train.batch_size": "4", "fusion": "average"})
    config = sample(pinned, 1, points=pinned.points(mmhvae.PAPER_POINTS))[0]
    assert config["train.batch_size"] == "4" and config["model.fusion"] == "average"
    assert "model.fusion" not in pinned.points(mmhvae.PAPER_POINTS)[0]
    train, model, tags = trial_configs(config, context("mmhvae"))
    assert train.batch_size == 4 and model["fusion"] == "average" and "gan" not in model
    assert tags == {f"{TAG_SPACE}gan": str(config["gan"])}  # a choice of the space, not a config field


def test_fixed_value_outside_the_choices_is_refused_by_name():
    pinned = FixedSpace(disentangle.space, {"regulariser": "bogus"})
    with pytest.raises(ValueError, match="regulariser"):
        sample(pinned, 1)
    with pytest.raises(ValueError, match="levels"):
        sample(FixedSpace(mmhvae.space, {"levels": "2.5"}), 1)


@pytest.mark.parametrize("family,preset", [("mmhvae", "tiny"), ("mmhvae", "paper"), ("disentangle", "tiny"), ("disentangle", "paper")])
def test_every_sampled_configuration_is_a_valid_family_config(family, preset):
    from raysys.models import make_config

    max_levels = getattr(make_config(family, preset), "max_levels", None)
    space, points = load_space(family, max_levels=max_levels, epochs=4)
    configs = sample(space, 40, points=points)
    if max_levels:
        assert configs[0]["model.levels"] == max_levels  # the paper's point uses the full depth
    for c in configs:
        _, model, _ = trial_configs(c, context(family, preset))
        config = make_config(family, preset, model)  # unknown keys or bad values raise here
        for key, value in model.items():
            assert getattr(config, key) == value

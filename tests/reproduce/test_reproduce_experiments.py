"""The experiment definitions and their plans: rows, claims, budgets, switches, shared runs.

Plans are made on a small in-memory stand-in for a store (modalities, folds, availability):
only ``make_plan``'s reading of those is exercised here; the smoke test uses a real store.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from raysys.config import ConfigError
from raysys.models import make_config
from raysys.reproduce.experiments import (
    EXPERIMENTS, LMAX, MMHVAE_ABLATION, MMHVAE_TABLE1, OUYANG_TABLE1, Experiment, Variant, mhvae_pairs,
)
from raysys.reproduce.paper_numbers import mmhvae_table1, mmhvae_table2
from raysys.reproduce.plan import PENDING_DEFAULTS, has_switch, make_plan, resolve, seeds_for

MODALITIES = ["t1", "t1gd", "t2", "flair"]


@dataclasses.dataclass
class FakeStore:
    """24 subjects, 4 folds; subject 0 misses t1gd (an incomplete training subject of fold 0)."""

    modalities: list = dataclasses.field(default_factory=lambda: list(MODALITIES))
    incomplete: bool = True
    attrs: dict = dataclasses.field(default_factory=lambda: {"folds": 4})
    url: str = "fake.zarr"

    def split_subjects(self, split: str, fold: int) -> np.ndarray:
        folds = np.arange(24) % 4
        test, val = fold, (fold + 1) % 4
        keep = {"test": folds == test, "val": folds == val, "train": (folds != test) & (folds != val)}[split]
        return np.flatnonzero(keep)

    complete_training: int | None = None  # only this many training subjects of fold 0 have every modality

    def available(self, subject: int) -> dict:
        if self.complete_training is not None:
            train = list(self.split_subjects("train", 0))
            return {m: train.index(subject) < self.complete_training or m != "t1gd" if subject in train else True
                    for m in self.modalities}
        return {m: not (self.incomplete and subject == 2 and m == "t1gd") for m in self.modalities}

    @property
    def availability(self) -> np.ndarray:
        return np.array([[self.available(s)[m] for m in self.modalities] for s in range(24)])


def test_every_experiment_names_real_rows_and_budgets():
    assert set(EXPERIMENTS) == {"ouyang-table1", "mmhvae-table1", "mmhvae-ablation"}
    for experiment in EXPERIMENTS.values():
        assert set(experiment.budgets) == {"smoke", "cpu", "gpu"}
        for budget in experiment.budgets:
            rows = experiment.rows(budget, MODALITIES)  # validates that every claim names a row
            assert rows and all(r.family in ("disentangle", "mmhvae", "mmgan") for r in rows)
        assert experiment.budgets["gpu"].preset == "paper" and experiment.budgets["smoke"].train["epochs"] == 1


def test_ouyang_rows_are_the_papers_four_by_encoder_and_regulariser():
    rows = {r.label: r.overrides for r in OUYANG_TABLE1.rows("cpu", MODALITIES)}
    paper_c = {"model.anatomy_channels": 4}  # the paper's C at every budget (the cpu preset has 8)
    assert rows == {
        "Conv+NA": {"model.encoder": "conv", "model.regulariser": "na", **paper_c},
        "Conv+Adv": {"model.encoder": "conv", "model.regulariser": "adv", **paper_c},
        "Conv+Sim": {"model.encoder": "conv", "model.regulariser": "sim", **paper_c},
        "CondConv+Sim": {"model.encoder": "condconv", "model.regulariser": "sim", **paper_c},
    }


def test_a_claim_must_name_a_row():
    bad = dataclasses.replace(OUYANG_TABLE1, claims=OUYANG_TABLE1.claims + (
        dataclasses.replace(OUYANG_TABLE1.claims[0], better="Conv+Nothing"),))
    with pytest.raises(ValueError, match="Conv\\+Nothing"):
        bad.rows("cpu", MODALITIES)
    with pytest.raises(ValueError, match="prefix"):
        Variant("x", "mmhvae", {"levels": 2})


def test_mhvae_pairs_pair_t2_with_each_modality_on_cpu():
    assert mhvae_pairs("cpu", MODALITIES) == [("t1", "t2"), ("t1gd", "t2"), ("t2", "flair")]
    assert mhvae_pairs("smoke", MODALITIES) == [("t2", "flair")]
    assert len(mhvae_pairs("gpu", MODALITIES)) == 6
    assert mhvae_pairs("cpu", ["a", "b", "c"]) == [("a", "b"), ("a", "c")]  # no t2: the first modality
    rows = [r for r in MMHVAE_TABLE1.rows("cpu", MODALITIES) if r.method == "MHVAE"]
    assert [r.overrides["train.modalities"] for r in rows] == [("t1", "t2"), ("t1gd", "t2"), ("t2", "flair")]
    assert all(r.overrides["model.posterior"] == "full" for r in rows)


def test_levels_lmax_resolves_to_the_presets_ladder():
    row = Variant("L=Lmax", "mmhvae", {"model.levels": LMAX})
    for preset in ("tiny", "cpu", "paper"):
        budget = dataclasses.replace(MMHVAE_ABLATION.budgets["cpu"], preset=preset)
        flat, _, reason = resolve(row, budget, raw=False)
        assert reason is None and flat["model.levels"] == make_config("mmhvae", preset).max_levels
    assert make_config("mmhvae", "paper").max_levels == 7


def test_rows_of_one_configuration_train_once():
    plan = make_plan(MMHVAE_ABLATION, "cpu", FakeStore(), fold=0)
    full = plan.run_of("L=Lmax")
    assert full is not None and {"poe", "GAN on", "subset mixture", "incomplete data"} <= set(full.labels)
    keys = [r.key for r in plan.runs]
    assert len(keys) == len(set(keys)) and "poe" not in keys and "L=1" in keys
    # every run is the budget's training and the family's preset
    assert all(r.flat["train.epochs"] == 5 and r.flat["train.preset"] == "cpu" for r in plan.runs)
    assert plan.run_of("GAN off").flat["model.lambda_gan"] == 0.0 and full.flat["model.lambda_gan"] == 0.025


def test_switches_this_build_lacks_are_dropped_at_their_default_and_skip_otherwise():
    plan = make_plan(MMHVAE_ABLATION, "cpu", FakeStore(), fold=0)
    if has_switch("mmhvae", "model.posterior"):  # after SWITCHES merged: the ablation row runs
        assert plan.run_of("full posterior").flat["model.posterior"] == "full"
    else:
        assert "model.posterior" in plan.skipped["full posterior"]
        assert "model.posterior" in plan.dropped["L=Lmax"] and "model.posterior" not in plan.run_of("L=Lmax").flat
    if not has_switch("mmhvae", "train.training_subjects"):
        assert "train.training_subjects" in plan.skipped["complete data"]
    assert set(PENDING_DEFAULTS) == {"model.posterior", "train.modalities", "train.training_subjects", "train.inputs"}


def test_complete_data_is_skipped_when_no_training_subject_is_incomplete():
    plan = make_plan(MMHVAE_ABLATION, "cpu", FakeStore(incomplete=False), fold=0)
    assert "complete data" in plan.skipped
    if has_switch("mmhvae", "train.training_subjects"):
        assert "every training subject" in plan.skipped["complete data"]


def test_complete_data_on_few_complete_subjects_takes_them_all_with_more_steps():
    """4 complete training subjects, batch 8: the row trains on batches of 4 for twice the steps
    (the same slices per epoch), the runs table says so, and every run's batch then fits."""
    from raysys.reproduce.plan import check_sizes, fit_batch
    from raysys.reproduce.report import runs_table

    store = FakeStore(complete_training=4)
    plan = make_plan(MMHVAE_ABLATION, "cpu", store, fold=0)
    complete, full = plan.run_of("complete data"), plan.run_of("incomplete data")
    budget = MMHVAE_ABLATION.budgets["cpu"].train
    assert (full.flat["train.batch_size"], full.flat["train.max_steps_per_epoch"]) == (budget["batch_size"], budget["max_steps_per_epoch"])
    assert complete.flat["train.batch_size"] == 4
    assert complete.flat["train.max_steps_per_epoch"] * 4 == budget["max_steps_per_epoch"] * budget["batch_size"]
    assert "4 training subjects: batch 4 x 100 steps per epoch instead of 8 x 50" in complete.note and not full.note
    check_sizes(plan, store, 0)
    assert "| complete data | mmhvae | complete data | 2 of 2 | 4 training subjects" in runs_table(plan, [0, 1], {})
    flat = {"train.batch_size": 8, "train.max_steps_per_epoch": 50}
    assert fit_batch(flat, 3) and flat == {"train.batch_size": 3, "train.max_steps_per_epoch": 134}
    assert fit_batch({"train.batch_size": 8, "train.max_steps_per_epoch": 50}, 12) == ""


def test_a_batch_no_row_can_fill_is_refused_before_ray_naming_the_row():
    from raysys.config import ConfigError
    from raysys.reproduce.plan import check_sizes

    store = FakeStore(complete_training=4)
    plan = make_plan(MMHVAE_ABLATION, "cpu", store, fold=0)
    run = plan.run_of("complete data")
    run.flat["train.batch_size"] = 6  # as a plan without fit_batch would leave it
    with pytest.raises(ConfigError, match=r"^row 'complete data': train.training_subjects=complete: .* 4 subjects"):
        check_sizes(plan, store, 0)


def test_bad_budget_and_seeds_are_config_errors():
    with pytest.raises(ConfigError, match="--budget"):
        make_plan(OUYANG_TABLE1, "tpu", FakeStore(), fold=0)
    with pytest.raises(ConfigError, match="--seeds"):
        seeds_for(0, OUYANG_TABLE1.budgets["cpu"])
    assert seeds_for(None, OUYANG_TABLE1.budgets["cpu"]) == [0, 1]
    broken = Experiment("x", "x", "ablation", lambda b, m: [Variant("a", "mmhvae", {"model.levels": 99})], (),
                        MMHVAE_ABLATION.budgets, "")
    with pytest.raises(ConfigError, match="row 'a'"):
        make_plan(broken, "cpu", FakeStore(), fold=0)


def test_cpu_budgets_fit_the_phantom_store_and_are_one_training_for_every_family():
    for experiment in EXPERIMENTS.values():
        budget = experiment.budgets["cpu"]
        assert budget.train["batch_size"] <= 12  # the 24-subject phantom's training split (4 folds)
        plan = make_plan(experiment, "cpu", FakeStore(), fold=0)
        trains = {tuple(sorted((k, v) for k, v in r.flat.items() if k.startswith("train.") and k not in
                               ("train.family", "train.modalities", "train.training_subjects"))) for r in plan.runs}
        assert len(trains) == 1, f"{experiment.name}: runs differ in their training budget"


def test_paper_numbers_map_onto_our_modalities():
    assert mmhvae_table1("MMHVAE", ("t2",)) == {"t2": (35.9, 0.985), "t1gd": (24.9, 0.867), "flair": (23.5, 0.851)}
    assert mmhvae_table1("MoPoE", ("t1gd", "t2"))["flair"] == (20.2, 0.803)  # order-free subsets
    assert mmhvae_table1("MMHVAE", ("t1", "t2")) == {}  # the paper has iUS, not t1
    assert mmhvae_table1("ResViT", ("t2",)) == {}
    assert mmhvae_table2("L=Lmax")["t2"] == (28.6, 0.907) and mmhvae_table2("full posterior") == {}

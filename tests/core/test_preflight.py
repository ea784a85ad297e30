"""Fail fast: a bad run of jobs/train_*.py or jobs/tune_*.py exits 2 with ONE line on stderr naming
the flag or value and what would work, before anything starts Ray (raysys.preflight).

The jobs run as a user runs them (subprocesses). Ray not starting is checked on the filesystem:
each job gets its own ``RAY_TMPDIR``, where any Ray instance it started would leave a session dir.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import zarr

from raysys.config import ConfigError
from raysys.data import open_store
from raysys.preflight import check_resume, checked_overrides, checked_store

ROOT = Path(__file__).resolve().parents[2]


def run_job(script: str, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    ray_tmp = tmp_path / "ray_tmp"
    ray_tmp.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_TMPDIR=str(ray_tmp), PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, str(ROOT / "jobs" / script), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)


def assert_refused(done: subprocess.CompletedProcess, tmp_path: Path, *expected: str) -> str:
    """Exit 2, exactly one stderr line holding every ``expected`` text, and no Ray session started."""
    lines = done.stderr.splitlines()
    assert done.returncode == 2, done.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-3000:]
    for text in expected:
        assert text in lines[0], lines[0]
    assert not list((tmp_path / "ray_tmp").glob("**/session_*")), "a Ray instance was started"
    assert "Ray instance" not in done.stdout + done.stderr
    return lines[0]


@pytest.fixture(scope="module")
def t1_store(phantom_dir, tmp_path_factory) -> str:
    """The phantom cohort converted with T1 only."""
    from data_prep.convert import convert

    out = tmp_path_factory.mktemp("t1_store") / "t1.zarr"
    convert(str(phantom_dir), str(out), modalities=["t1"], size=(64, 64), normalise="zscore", folds=4, seed=0, progress=False)
    return str(out)


@pytest.fixture()
def incomplete_store(tiny_store, tmp_path) -> str:
    """A copy of the tiny store whose ``complete`` attr is false (an interrupted conversion)."""
    copy = tmp_path / "interrupted.zarr"
    shutil.copytree(tiny_store, copy)
    zarr.open_group(str(copy), mode="r+").attrs["complete"] = False
    return str(copy)


def train_subjects(store: str, fold: int = 0) -> int:
    return len(open_store(store).split_subjects("train", fold))


# --- jobs/train_<family>.py -----------------------------------------------------------------
@pytest.mark.slow
def test_train_batch_larger_than_the_training_subjects(tiny_store, tmp_path):
    n = train_subjects(tiny_store)
    done = run_job("train_disentangle.py", ["--data", tiny_store, "--batch-size", str(n + 1), "--workers", "2"], tmp_path)
    assert_refused(done, tmp_path, f"--batch-size {n + 1}", f"use --batch-size <= {n}")


@pytest.mark.slow
def test_train_unknown_set_key_names_the_close_match(tiny_store, tmp_path):
    done = run_job("train_mmhvae.py", ["--data", tiny_store, "--set", "lamda_kl=1e-3"], tmp_path)
    assert_refused(done, tmp_path, "--set lamda_kl=1e-3", "did you mean model.lambda_kl")


@pytest.mark.slow
def test_train_missing_store(tmp_path):
    missing = str(tmp_path / "nowhere.zarr")
    done = run_job("train_mmhvae.py", ["--data", missing], tmp_path)
    assert_refused(done, tmp_path, f"--data {missing}", "python -m data_prep.convert")


@pytest.mark.slow
def test_train_incomplete_store(incomplete_store, tmp_path):
    done = run_job("train_disentangle.py", ["--data", incomplete_store], tmp_path)
    assert_refused(done, tmp_path, f"--data {incomplete_store}", "incomplete", "python -m data_prep.convert")


@pytest.mark.slow
def test_train_model_needs_modalities_the_store_lacks(t1_store, tmp_path):
    done = run_job("train_disentangle.py", ["--data", t1_store], tmp_path)
    assert_refused(done, tmp_path, f"--data {t1_store}", "modalities t1,", ">= 2", "--modalities")


# --- jobs/tune_<family>.py ------------------------------------------------------------------
def tune_args(data: str, tmp_path: Path, *more: str) -> list[str]:
    return ["--data", data, "--batch-size", "2", "--storage", str(tmp_path / "studies"), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}", *more]


@pytest.mark.slow
def test_tune_unknown_fix_key_names_the_close_match(tiny_store, tmp_path):
    done = run_job("tune_mmhvae.py", tune_args(tiny_store, tmp_path, "--fix", "gan=on", "--fix", "lamda_kl=1e-3"), tmp_path)
    assert_refused(done, tmp_path, "--fix lamda_kl=1e-3", "did you mean model.lambda_kl")


@pytest.mark.slow
def test_tune_fix_value_of_the_wrong_type(tiny_store, tmp_path):
    done = run_job("tune_disentangle.py", tune_args(tiny_store, tmp_path, "--fix", "train.batch_size=two"), tmp_path)
    assert_refused(done, tmp_path, "--fix train.batch_size=two", "not an integer")


@pytest.mark.slow
def test_tune_incomplete_store(incomplete_store, tmp_path):
    done = run_job("tune_mmhvae.py", tune_args(incomplete_store, tmp_path), tmp_path)
    assert_refused(done, tmp_path, f"--data {incomplete_store}", "incomplete")


@pytest.mark.slow
def test_tune_model_needs_modalities_the_store_lacks(t1_store, tmp_path):
    done = run_job("tune_disentangle.py", tune_args(t1_store, tmp_path), tmp_path)
    assert_refused(done, tmp_path, f"--data {t1_store}", "modalities t1,", ">= 2")


@pytest.mark.slow
def test_tune_batch_pinned_by_fix_larger_than_the_training_subjects(tiny_store, tmp_path):
    n = train_subjects(tiny_store)
    done = run_job("tune_mmhvae.py", tune_args(tiny_store, tmp_path, "--fix", f"train.batch_size={n + 1}"), tmp_path)
    assert_refused(done, tmp_path, f"--fix train.batch_size={n + 1}", f"<= {n}")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_tune_resume_with_other_objectives_than_the_study(tiny_store, tmp_path):
    """A real (single-objective) study, then ``--resume`` asking for two objectives: refused."""
    ray = pytest.importorskip("ray")
    from ray import tune

    from raysys.train import TrackingSpec, TrainConfig
    from raysys.tune import StudySpec, run_study

    def one_report(config, context):
        tune.report({"objective": 1.0, "val/disentanglement": 0.5})

    storage = tmp_path / "studies"
    spec = StudySpec(train=TrainConfig(family="disentangle", data=tiny_store, epochs=1), name="s", storage=str(storage),
                     trials=1, grace_epochs=1, register=False,
                     tracking=TrackingSpec(tracking_uri=f"sqlite:///{tmp_path / 'm.db'}", experiment="s"))
    ray.init(address="local", num_cpus=1, resources={"trial_driver": 1}, include_dashboard=False, log_to_driver=False)
    try:
        assert run_study(spec, trainable=one_report).trials == 1
    finally:
        ray.shutdown()

    asked = ["--name", "s", "--resume", "--objectives", "objective,val/disentanglement"]
    done = run_job("tune_disentangle.py", tune_args(tiny_store, tmp_path, *asked), tmp_path)
    assert_refused(done, tmp_path, "--objectives objective:max,val/disentanglement:max", "study 's'", "created with objective:max", "resume without --objectives")


# --- the checks themselves, in process --------------------------------------------------------
def test_bare_keys_are_model_fields_and_space_parameters_pass_through():
    train, model = checked_overrides("--fix", ["train.batch_size=2", "lr=1e-3", "model.levels=3", "gan=on"], "mmhvae",
                                     space_names={"gan", "model.levels", "model.lr"})
    assert train == {"batch_size": "2"}
    assert model == {"lr": "1e-3", "levels": "3", "gan": "on"}


def test_a_bare_train_field_is_suggested_with_its_prefix():
    with pytest.raises(ConfigError, match=r"--set seed=3: .*did you mean train\.seed"):
        checked_overrides("--set", ["seed=3"], "disentangle")


def test_a_space_parameter_keeps_its_own_name():
    """``gan`` is the space's own choice, not a model field: ``model.gan`` pins nothing."""
    with pytest.raises(ConfigError, match=r"--fix model.gan=on: .*did you mean gan"):
        checked_overrides("--fix", ["model.gan=on"], "mmhvae", space_names={"gan"})


def test_a_directory_that_is_no_store(tmp_path):
    with pytest.raises(ConfigError, match=rf"^--data {tmp_path}: not a Zarr v3 store .*data_prep.convert$"):
        checked_store(str(tmp_path))


def resumable_study(tmp_path: Path, directions: list[str], saved: dict) -> Path:
    """The files ``--resume`` reads: the Optuna study (created as Ray's OptunaSearch creates it),
    study.json as written at the study's start, and Tune's tuner.pkl (only its presence counts)."""
    study_dir = tmp_path / "s"
    study_dir.mkdir()
    optuna.create_study(study_name="s", storage=f"sqlite:///{study_dir / 'optuna.db'}", directions=directions)
    (study_dir / "study.json").write_text(json.dumps(saved))
    (study_dir / "tuner.pkl").write_bytes(b"")
    return study_dir


def test_resume_compares_the_objectives_study_json_records(tmp_path):
    saved = {"parent_run_id": "r", "objectives": [["objective", "max"], ["val/disentanglement", "max"]]}
    study_dir = resumable_study(tmp_path, ["maximize", "maximize"], saved)
    check_resume(study_dir, "s", [("objective", "max"), ("val/disentanglement", "max")])
    with pytest.raises(ConfigError, match=r"--objectives objective:max,val/psnr:max: .*created with "
                                          r"objective:max,val/disentanglement:max; resume with --objectives "
                                          r"objective:max,val/disentanglement:max$"):
        check_resume(study_dir, "s", [("objective", "max"), ("val/psnr", "max")])


def test_resume_without_recorded_names_compares_optuna_directions(tmp_path):
    study_dir = resumable_study(tmp_path, ["maximize"], {"parent_run_id": "r"})
    check_resume(study_dir, "s", [("objective", "max")])
    with pytest.raises(ConfigError, match=r"created with 1 objective\(s\) \(max\)"):
        check_resume(study_dir, "s", [("objective", "max"), ("val/disentanglement", "max")])


def test_resume_refuses_a_changed_search_or_scheduler(tmp_path):
    saved = {"parent_run_id": "r", "objectives": [["objective", "max"]], "search": "random", "scheduler": "none"}
    study_dir = resumable_study(tmp_path, ["maximize"], saved)
    check_resume(study_dir, "s", [("objective", "max")], search="random", scheduler="none")
    with pytest.raises(ConfigError, match=r"^--search tpe: study 's' at .* was created with --search random; "
                                          r"resume with --search random$"):
        check_resume(study_dir, "s", [("objective", "max")], scheduler="none")
    with pytest.raises(ConfigError, match=r"^--scheduler asha: .* created with --scheduler none; resume with --scheduler none$"):
        check_resume(study_dir, "s", [("objective", "max")], search="random")


def test_resume_refuses_a_changed_reduction_factor_or_tpe_startup(tmp_path):
    saved = {"parent_run_id": "r", "objectives": [["objective", "max"]], "reduction_factor": 3, "tpe_startup_trials": 4}
    study_dir = resumable_study(tmp_path, ["maximize"], saved)
    check_resume(study_dir, "s", [("objective", "max")], reduction_factor=3, tpe_startup_trials=4)
    with pytest.raises(ConfigError, match=r"^--reduction-factor 2: .* created with --reduction-factor 3; "
                                          r"resume with --reduction-factor 3$"):
        check_resume(study_dir, "s", [("objective", "max")], tpe_startup_trials=4)
    with pytest.raises(ConfigError, match=r"^--tpe-startup-trials 10: .* resume with --tpe-startup-trials 4$"):
        check_resume(study_dir, "s", [("objective", "max")], reduction_factor=3)


def test_a_study_json_without_the_choices_was_a_tpe_asha_study(tmp_path):
    study_dir = resumable_study(tmp_path, ["maximize"], {"parent_run_id": "r", "objectives": [["objective", "max"]]})
    check_resume(study_dir, "s", [("objective", "max")])
    with pytest.raises(ConfigError, match=r"^--search random: .* created with --search tpe; resume without --search$"):
        check_resume(study_dir, "s", [("objective", "max")], search="random")


def test_resume_needs_a_study(tmp_path):
    with pytest.raises(ConfigError, match=r"^--resume --name nope: no study to resume"):
        check_resume(tmp_path / "nope", "nope", [("objective", "max")])

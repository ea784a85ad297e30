"""Where a study's databases live: refused before Ray starts when the study dir is on object
storage without a database for Optuna or MLflow, or when Optuna would share MLflow's database."""

from __future__ import annotations

import pytest

from raysys.config import ConfigError
from raysys.train import TrackingSpec, TrainConfig
from raysys.tune import StudyError, StudySpec, run_study
from raysys.tune.cli import main
from raysys.tune.spec import check_databases, same_database


def cli_error(capsys, *argv: str) -> str:
    """Runs the tune CLI; it must refuse with status 2 and ONE line on stderr, before starting Ray."""
    import ray

    code = main("disentangle", ["--data", "unused.zarr", "--name", "s", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert not ray.is_initialized()
    return err[0]


def test_remote_study_dir_without_an_optuna_database_is_refused(capsys, tmp_path):
    line = cli_error(capsys, "--storage", "s3://bucket/studies", "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}")
    assert ("--storage s3://bucket/studies: the Optuna study needs a database; pass --optuna-storage "
            "sqlite:////shared/optuna.db or postgresql://...") in line


def test_remote_study_dir_without_a_tracking_uri_is_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    line = cli_error(capsys, "--storage", "s3://bucket/studies", "--optuna-storage", f"sqlite:///{tmp_path / 'o.db'}")
    assert "--storage s3://bucket/studies: MLflow needs a tracking database" in line and "--tracking-uri" in line


def test_optuna_in_mlflows_database_is_refused(capsys, tmp_path):
    db = tmp_path / "shared.db"
    line = cli_error(capsys, "--storage", str(tmp_path / "studies"), "--tracking-uri", f"sqlite:///{db}",
                     "--optuna-storage", f"sqlite:///{tmp_path}/./shared.db")
    assert "--optuna-storage" in line and "MLflow's tracking database" in line


def test_optuna_storage_must_be_a_database_url(capsys, tmp_path):
    line = cli_error(capsys, "--storage", str(tmp_path / "studies"), "--optuna-storage", str(tmp_path / "o.db"))
    assert f"--optuna-storage {tmp_path / 'o.db'}: not a database URL" in line


def test_run_study_refuses_a_remote_study_without_databases(tmp_path):
    spec = StudySpec(train=TrainConfig(family="disentangle"), name="s", storage="s3://bucket/studies",
                     tracking=TrackingSpec(tracking_uri=f"sqlite:///{tmp_path / 'm.db'}"))
    with pytest.raises(StudyError, match="the Optuna study needs a database"):
        run_study(spec)
    with pytest.raises(StudyError, match="the Optuna study needs a database"):
        spec.optuna_url  # noqa: B018 - no sqlite default on object storage


@pytest.mark.parametrize("a, b, same", [
    ("sqlite:////data/mlflow.db", "sqlite+pysqlite:////data/x/../mlflow.db", True),
    ("sqlite:////data/mlflow.db", "sqlite:////data/optuna.db", False),
    ("postgresql://u:p@db:5432/mlflow", "postgresql+psycopg2://other@DB:5432/mlflow?sslmode=require", True),
    ("postgresql://u:p@db:5432/mlflow", "postgresql://u:p@db:5432/optuna", False),
    ("mysql://db/mlflow", "postgresql://db/mlflow", False),
])
def test_same_database(a, b, same):
    assert same_database(a, b) is same


def test_a_local_study_needs_no_database_urls():
    check_databases("/shared/studies", None, None)
    with pytest.raises(ConfigError, match="the Optuna study needs a database"):
        check_databases("gs://bucket/studies", None, "http://mlflow:5000")

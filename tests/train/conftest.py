"""Fixtures for the Ray Train tests: the toy family registered (also in Ray workers)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

# Ray workers are started by raylets that inherit this environment: make the toy family
# module importable there before any Ray instance starts.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)


@pytest.fixture(scope="session", autouse=True)
def toy_family_registered():
    from raysys.models import FAMILIES

    FAMILIES["toy"] = "toy_family:ToyFamily"
    yield "toy"
    FAMILIES.pop("toy", None)


@pytest.fixture()
def tracking_uri(tmp_path) -> str:
    """A fresh sqlite MLflow backend per test."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"

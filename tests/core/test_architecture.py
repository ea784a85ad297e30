"""Architecture guards: model code stays pure PyTorch; the packages install and import."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import raysys.models

ROOT = Path(__file__).resolve().parents[2]


def test_models_import_neither_ray_nor_mlflow():
    modules = [m.name for m in pkgutil.walk_packages(raysys.models.__path__, "raysys.models.")]
    assert "raysys.models.family" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'mlflow'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, f"raysys.models pulled in {result.stdout} {result.stderr[-2000:]}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make demo" in readme
    assert "make test" in ci

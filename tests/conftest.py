"""Session-wide fixtures: one tiny phantom cohort and one converted store, shared by all tests.

Generated once per test session into a temp dir (a few seconds at 2 mm, few subjects).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Keep every test process (and the Ray workers it spawns) to the machine's 2 cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory) -> Path:
    """A 8-subject, 2 mm phantom cohort (all 4 MR modalities, default missingness)."""
    from data_prep.phantom import generate_cohort

    out = tmp_path_factory.mktemp("phantom")
    generate_cohort(out, subjects=8, seed=0, resolution=2)
    return out


@pytest.fixture(scope="session")
def tiny_store(phantom_dir, tmp_path_factory) -> str:
    """The phantom converted to a 64x64 z-scored Zarr v3 store with 4 folds."""
    from data_prep.convert import convert

    out = tmp_path_factory.mktemp("store") / "phantom.zarr"
    convert(str(phantom_dir), str(out), size=(64, 64), normalise="zscore", folds=4, seed=0)
    return str(out)


@pytest.fixture(scope="session")
def raw_store(phantom_dir, tmp_path_factory) -> str:
    """The phantom converted like ``tiny_store`` but WM-median normalised (the MMHVAE paper's
    harmonisation) and with ``--keep-raw``: raw/<modality> beside images/<modality>."""
    from data_prep.convert import convert

    out = tmp_path_factory.mktemp("raw_store") / "phantom-raw.zarr"
    convert(str(phantom_dir), str(out), size=(64, 64), normalise="wm-median", folds=4, seed=0, keep_raw=True, progress=False)
    return str(out)

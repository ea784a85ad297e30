"""An interrupted conversion (process killed mid-way) resumes without redoing finished subjects."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from convert_helpers import expected_zscore, write_subject

from data_prep.convert import ConvertError, convert
from data_prep.convert.subject import CRASH_AFTER_ENV
from raysys.data import StoreError, open_store

REPO = Path(__file__).resolve().parents[3]


def test_killed_conversion_resumes_and_finishes(tmp_path):
    paths = {f"r{i}": write_subject(tmp_path / "in", f"r{i}", seed=i) for i in range(5)}
    url = str(tmp_path / "store.zarr")
    args = ["--input", str(tmp_path / "in"), "--output", url, "--size", "48", "40", "--folds", "3",
            "--workers", "1", "--scheduler", "threads", "--quiet"]
    env = {**os.environ, CRASH_AFTER_ENV: "2", "OMP_NUM_THREADS": "1"}
    killed = subprocess.run([sys.executable, "-m", "data_prep.convert", *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == 75, killed.stderr   # exited abruptly after staging 2 subjects
    with pytest.raises(StoreError, match="incomplete"):
        open_store(url)
    with pytest.raises(ConvertError, match="different arguments.*normalise"):
        convert(str(tmp_path / "in"), url, size=(48, 40), folds=3, normalise="minmax", progress=False)

    report = convert(str(tmp_path / "in"), url, size=(48, 40), folds=3, workers=2, progress=False)
    assert len(report.resumed) == 2                # staged before the kill ...
    assert not set(report.resumed) & set(report.processed)   # ... and not redone
    assert sorted(report.resumed + report.processed) == sorted(paths)
    assert report.subjects == sorted(paths) and report.ok
    store = open_store(url)
    for subject, files in paths.items():
        _, expected = expected_zscore(files)
        start, stop = store.slice_range(subject)
        for modality, volume in expected.items():
            np.testing.assert_allclose(store.array(f"images/{modality}")[start:stop], volume, atol=1e-4)
    assert "_staging" not in [name for name, _ in store._root.groups()]

    again = convert(str(tmp_path / "in"), url, size=(48, 40), folds=3, progress=False)
    assert again.already_complete and again.subjects == report.subjects

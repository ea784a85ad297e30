"""``python -m raysys.synthesise`` end to end: Ray Data with an actor pool on a local Ray, a
tiny mmhvae model directory, two good subjects and one with a corrupt file."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import pytest
from predict_helpers import copy_subject, truncate

from raysys.synthesise.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_bad_model_is_refused_before_any_work(tmp_path, phantom_dir, fast_models, capsys):
    assert main(["--model", str(tmp_path / "nope"), "--input", str(phantom_dir), "--out", str(tmp_path / "o")]) == 2
    assert "neither a model directory" in capsys.readouterr().err
    assert main(["--model", str(fast_models["old"]), "--input", str(phantom_dir), "--out", str(tmp_path / "o")]) == 2
    assert "--store STORE" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_synthesise_a_cohort_through_ray_data(tmp_path, phantom_dir, fast_models):
    source = tmp_path / "in"
    for subject in ("sub-001", "sub-002", "sub-003"):
        copy_subject(phantom_dir, subject, source, drop=("t2",))
    truncate(source / "sub-003" / "sub-003_flair.nii.gz")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_ADDRESS": ""}
    result = subprocess.run([sys.executable, "-m", "raysys.synthesise", "--model", str(fast_models["mmhvae"]),
                             "--input", str(source), "--out", str(out), "--actors", "2", "--seed", "0"],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    assert f"{source / 'sub-003' / 'sub-003_flair.nii.gz'}: corrupt or truncated gzip" in result.stderr
    with open(out / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["subject", "modality", "path", "synthesised"]
    assert {r["subject"] for r in rows} == {"sub-001", "sub-002"}
    written = [r for r in rows if r["synthesised"] == "true"]
    assert {(r["subject"], r["modality"]) for r in written} >= {("sub-001", "t2"), ("sub-002", "t2")}
    for row in written:
        image = nib.load(out / row["path"])
        source_image = nib.load(source / row["subject"] / f"{row['subject']}_t1.nii.gz")
        assert image.shape == source_image.shape and (image.affine == source_image.affine).all()
    for row in rows:
        if row["synthesised"] == "false":
            assert Path(row["path"]).is_file() and Path(row["path"]).is_relative_to(source)
    assert not (out / "sub-003").exists()
    assert not [p for p in out.rglob("*.tmp")]

"""jobs/segment.py as a user runs it: the upstream check before training, and one smoke run end to end."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "registry"))
from registry_helpers import write_checkpoint  # noqa: E402

from raysys.names import TAG_INPUT_MODE  # noqa: E402
from raysys.segment.report import COLUMNS  # noqa: E402


def test_an_unregistered_upstream_fails_before_training(tiny_store, tmp_path, capsys):
    import ray

    from raysys.segment.cli import main

    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["--data", tiny_store, "--input", "all", "--smoke", "--workers", "0", "--tracking-uri", db,
            "--storage", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--synthesiser", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --synthesiser ")  # the first mode needing one: mmhvae_impute
    assert main(argv[:-2]) == 2  # the default URI, not registered in this fresh database
    err = capsys.readouterr().err.strip()
    assert "models:/mmhvae@champion" in err and "register one" in err
    assert main([*argv[:-2], "--input", "fused_anatomy"]) == 2
    assert "--encoder models:/disentangle@champion" in capsys.readouterr().err
    assert not ray.is_initialized() and not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()


def test_job_fields_cannot_be_set(tiny_store, tmp_path, capsys):
    from raysys.segment.cli import main

    assert main(["--data", tiny_store, "--input", "standard_zero", "--out", str(tmp_path), "--set", "input_mode=unet"]) == 2
    assert "--set input_mode" in capsys.readouterr().err


@pytest.mark.slow
def test_smoke_run_trains_registers_scores_and_predicts(tiny_store, phantom_dir, tmp_path):
    """mmhvae_impute with the default --synthesiser (a tiny mmhvae registered as champion), in-process training."""
    from raysys.registry import load
    from raysys.registry.champion import publish
    from raysys.tracking import get_or_create_experiment

    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(db, registry_uri=db)
    run_id = client.create_run(get_or_create_experiment(client, "upstream", db)).info.run_id
    publish(tracking_uri=db, family="mmhvae", checkpoint_dir=write_checkpoint(tmp_path / "mmhvae", "mmhvae", image_size=64),
            objective_name="val/psnr_mean", objective_value=1.0, mode="max", store_id="s", run_id=run_id)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, str(ROOT / "jobs" / "segment.py"), "--data", tiny_store, "--input", "mmhvae_impute", "--smoke",
           "--workers", "0", "--storage", str(tmp_path / "runs"), "--tracking-uri", db, "--out", str(tmp_path / "out")]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]

    with open(tmp_path / "out" / "dice.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == COLUMNS
    assert {r["input_mode"] for r in rows} == {"mmhvae_impute"}
    assert {r["condition"] for r in rows} == {"all", "missing:t1", "missing:t1gd", "missing:t2", "missing:flair"}
    assert len(rows) == 5 * 6 and all(int(r["n"]) >= 0 for r in rows)
    table = (tmp_path / "out" / "table.md").read_text()
    assert "| input | N/A | t1 | t1gd | t2 | flair |" in table and "| mmhvae_impute |" in table

    version = client.get_model_version_by_alias("segmenter", "champion")
    assert str(version.version) == "1" and version.tags[TAG_INPUT_MODE] == "mmhvae_impute"
    segmenter = load("models:/segmenter@champion", tracking_uri=db)
    assert segmenter.input_mode == "mmhvae_impute" and segmenter.meta["model_config"]["frozen_parts"] == ""
    assert "models:/mmhvae/1" in segmenter.meta["model_config"]["upstream"]  # the alias pinned to what was used
    parent = [r for r in client.search_runs([client.get_experiment_by_name("raysys").experiment_id])
              if "mlflow.parentRunId" not in r.data.tags]
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(parent[0].info.run_id)} >= {"dice.csv", "table.md"}

    # --predict: the registered champion on NIfTI files (one subject without T2, one corrupt file),
    # through the Ray Data pipeline, in a subprocess as a user runs it
    cohort = tmp_path / "nifti"
    for subject in ("sub-000", "sub-001", "sub-002"):
        (cohort / subject).mkdir(parents=True)
        for path in sorted((phantom_dir / subject).glob(f"{subject}_*.nii.gz")):
            if path.name.endswith(("_seg.nii.gz", "_tissue.nii.gz")) or (subject == "sub-001" and "_t2." in path.name):
                continue
            (cohort / subject / path.name).write_bytes(path.read_bytes())
    broken = next((cohort / "sub-002").glob("*.nii.gz"))
    broken.write_bytes(broken.read_bytes()[:2000])
    cmd = [sys.executable, str(ROOT / "jobs" / "segment.py"), "--predict", str(cohort), "--model", "models:/segmenter@champion",
           "--tracking-uri", db, "--out", str(tmp_path / "seg"), "--actors", "1"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-4000:]          # one subject failed, the others are written
    assert str(broken) in done.stderr
    import nibabel as nib
    import numpy as np

    for subject in ("sub-000", "sub-001"):
        written = nib.load(tmp_path / "seg" / subject / f"{subject}_seg.nii.gz")
        reference = nib.load(next((cohort / subject).glob("*_t1.nii.gz")))
        assert written.shape == reference.shape and np.allclose(written.affine, reference.affine)
        assert set(np.unique(np.asarray(written.dataobj))) <= {0, 1, 2, 4}
    assert not (tmp_path / "seg" / "sub-002").exists()
    with open(tmp_path / "seg" / "manifest.csv") as handle:
        manifest = list(csv.DictReader(handle))
    assert [(r["subject"], r["modality"]) for r in manifest if r["synthesised"] == "true"] == [("sub-000", "seg"), ("sub-001", "seg")]

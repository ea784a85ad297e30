"""jobs/evaluate.py end to end on the phantom store: outputs, exact CSV columns, no NaN, refusals."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PER_SUBJECT = ["method", "subject", "inputs", "target", "psnr", "ssim"]
TABLE = ["method", "inputs", "target", "n", "psnr_mean", "psnr_std", "ssim_mean", "ssim_std", "p_value", "best"]

pytestmark = pytest.mark.slow


def run_job(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, str(ROOT / "jobs" / "evaluate.py"), *args], capture_output=True, text=True,
                          env=env, timeout=600, cwd=ROOT)


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open() as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def check_outputs(out: Path, family: str, methods: set[str]) -> dict:
    for name in ("per_subject.csv", "table.csv", "table.md", "figure.png", "summary.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    columns, rows = read_csv(out / "per_subject.csv")
    assert columns == PER_SUBJECT and rows
    assert {r["method"] for r in rows} == methods
    for r in rows:
        assert math.isfinite(float(r["psnr"])) and math.isfinite(float(r["ssim"])), r
    columns, table = read_csv(out / "table.csv")
    assert columns == TABLE and table
    for r in table:
        for k in TABLE[3:9]:
            assert math.isfinite(float(r[k])), r
        assert 0.0 <= float(r["p_value"]) <= 1.0 and r["best"] in ("True", "False")
    # every (method, subject, cell) row is unique, and every table row counts its subjects
    keys = [(r["method"], r["subject"], r["inputs"], r["target"]) for r in rows]
    assert len(keys) == len(set(keys))
    for t in table:
        n = sum(1 for r in rows if (r["method"], r["inputs"], r["target"]) == (t["method"], t["inputs"], t["target"]))
        assert int(t["n"]) == n
    # copy never copies the target onto itself: no copy row for a cell whose only input is the target
    assert not any(r["method"] == "baseline:copy" and r["inputs"] == r["target"] for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["family"] == family and isinstance(summary["beats_baselines"], bool)
    assert summary["left_out"] >= 0 and summary["targets"]
    for entry in summary["targets"].values():
        assert set(entry["beats_baselines"]) <= {"synthesis", "self"}
    return summary


def test_mmhvae_end_to_end(tiny_store, model_dirs, tmp_path):
    out = tmp_path / "mmhvae"
    proc = run_job("--model", str(model_dirs["mmhvae"]), "--data", tiny_store, "--out", str(out),
                   "--compare", str(model_dirs["mmhvae_old"]), "--max-slices-per-subject", "6", "--temperature", "0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = check_outputs(out, "mmhvae", {"model", "model:2", "baseline:zeros", "baseline:mean", "baseline:copy"})
    assert "left out:" in proc.stdout and "beats baselines" in proc.stdout
    assert summary["methods"] == {"model": str(model_dirs["mmhvae"]), "model:2": str(model_dirs["mmhvae_old"])}
    assert summary["temperature"] == 0.0
    # the compare model has no training record: evaluated with a warning
    assert "records no training subjects" in proc.stderr
    _, rows = read_csv(out / "per_subject.csv")
    cells = {(r["inputs"], r["target"]) for r in rows}
    assert summary["n_cells"] == len(cells) and summary["n_cells"] + summary["left_out"] == 15 * 4
    # deterministic: a second run gives the same numbers
    again = tmp_path / "again"
    assert run_job("--model", str(model_dirs["mmhvae"]), "--data", tiny_store, "--out", str(again),
                   "--max-slices-per-subject", "6", "--temperature", "0").returncode == 0
    first = {tuple(r[k] for k in PER_SUBJECT[:4]): r for r in rows if r["method"] == "model"}
    for r in read_csv(again / "per_subject.csv")[1]:
        if r["method"] == "model":
            assert r == first[tuple(r[k] for k in PER_SUBJECT[:4])]


def test_disentangle_end_to_end(tiny_store, model_dirs, tmp_path):
    out = tmp_path / "disentangle"
    proc = run_job("--model", str(model_dirs["disentangle"]), "--data", tiny_store, "--out", str(out),
                   "--max-slices-per-subject", "6")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = check_outputs(out, "disentangle", {"model", "baseline:zeros", "baseline:mean", "baseline:copy"})
    _, rows = read_csv(out / "per_subject.csv")
    assert all("+" not in r["inputs"] for r in rows)  # one source per cell
    assert summary["n_cells"] + summary["left_out"] == 16
    assert "model" in summary["disentanglement"]
    assert "| source |" in (out / "table.md").read_text()
    # figure columns: the one source, model, 3 baselines, target (no blank input columns)
    from PIL import Image

    with Image.open(out / "figure.png") as figure:
        assert figure.size[0] == round(100 * 1.6 * 6)


def test_bad_input_exits_2_with_one_line(tiny_store, model_dirs, tmp_path):
    # the model was validated on fold 1 (= the val split of fold 0): refused, naming the subjects
    proc = run_job("--model", str(model_dirs["mmhvae"]), "--data", tiny_store, "--split", "val", "--out", str(tmp_path / "x"))
    from raysys.data import open_store

    store = open_store(tiny_store)
    val = [store.subjects[i] for i in store.split_subjects("val", 0)]
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "refused" in proc.stderr and all(s in proc.stderr for s in val)
    # fold 1's test split is fold 1 = the model's validation fold
    assert run_job("--model", str(model_dirs["mmhvae"]), "--data", tiny_store, "--fold", "1",
                   "--out", str(tmp_path / "y")).returncode == 2
    proc = run_job("--model", str(model_dirs["mmhvae"]), "--data", tiny_store, "--split", "train", "--out", str(tmp_path / "z"))
    assert proc.returncode == 2 and "split='train'" in proc.stderr and proc.stderr.strip().count("\n") == 0
    proc = run_job("--model", str(model_dirs["mmhvae"]), "--data", str(tmp_path / "nothing.zarr"), "--out", str(tmp_path / "w"))
    assert proc.returncode == 2 and proc.stderr.startswith("error:")
    proc = run_job("--model", str(tmp_path / "no_model"), "--data", tiny_store, "--out", str(tmp_path / "v"))
    assert proc.returncode == 2 and "neither a model directory" in proc.stderr
    proc = run_job("--model", "models:/m@champion", "--data", tiny_store, "--out", str(tmp_path / "u"))
    assert proc.returncode == 2 and "--tracking-uri" in proc.stderr  # refused before MLflow creates a default db
    assert not (tmp_path / "x").exists()

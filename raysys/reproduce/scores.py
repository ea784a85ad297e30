"""Every run's test-fold scores, read back from its MLflow run, keyed by table method.

``Scores.cells[(method, seed, subject)][(inputs, target)] = (psnr, ssim)``: the per-subject
means of ``raysys.evaluate``'s ``per_subject.csv``. A run stands for every row it was trained
for (rows that share a configuration); a method of several rows (the MHVAE pair models) gets the
cells of each (averaged where two score the same cell). The trivial baselines (``zeros``,
``mean``, ``copy``) come from the run of each seed that scored the most cells.
``Scores.probes[(method, seed)]`` holds a disentangle run's probe accuracy and silhouettes.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from raysys.evaluate.baselines import BASELINES
from raysys.reproduce.grid import TrialRecord
from raysys.reproduce.plan import Plan
from raysys.reproduce.trial import EVALUATION_DIR

MODEL = "model"  # raysys.evaluate's label of the evaluated model
BASELINE_NAMES = {b: b.split(":", 1)[1] for b in BASELINES}  # baseline:zeros -> zeros
Cell = tuple[str, str]  # (inputs label, target)
Unit = tuple[int, str]  # (seed, subject)


def is_synthesis(cell: Cell) -> bool:
    """Cross-synthesis: the target is not among the inputs (disentangle: source != target)."""
    inputs, target = cell
    return target not in inputs.split("+")


@dataclasses.dataclass
class Scores:
    cells: dict[tuple[str, int, str], dict[Cell, tuple[float, float]]] = dataclasses.field(default_factory=dict)
    probes: dict[tuple[str, int], dict[str, float]] = dataclasses.field(default_factory=dict)
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # long form, for scores.csv

    def methods(self) -> list[str]:
        return list(dict.fromkeys(m for m, _, _ in self.cells))

    def units(self, method: str) -> list[Unit]:
        return sorted((s, j) for m, s, j in self.cells if m == method)

    def values(self, method: str, metric: str, keep: Callable[[Cell], bool] = is_synthesis,
               only: Iterable[Cell] | None = None) -> dict[Unit, float]:
        """{unit: mean of ``metric`` over the method's cells that ``keep`` (and are in ``only``)}."""
        column = {"psnr": 0, "ssim": 1}[metric]
        allowed = None if only is None else set(only)
        out = {}
        for (m, seed, subject), cells in self.cells.items():
            if m != method:
                continue
            chosen = [v[column] for c, v in cells.items() if keep(c) and (allowed is None or c in allowed)]
            if chosen:
                out[(seed, subject)] = float(np.mean(chosen))
        return out

    def paired(self, a: str, b: str, metric: str) -> tuple[list[Unit], np.ndarray, np.ndarray]:
        """Units both methods scored, each averaged over the synthesis cells BOTH scored there."""
        units, va, vb = [], [], []
        for unit in sorted(set(self.units(a)) & set(self.units(b))):
            seed, subject = unit
            common = set(self.cells[(a, seed, subject)]) & set(self.cells[(b, seed, subject)])
            x = self.values(a, metric, only=common).get(unit)
            y = self.values(b, metric, only=common).get(unit)
            if x is not None and y is not None:
                units.append(unit)
                va.append(x)
                vb.append(y)
        return units, np.asarray(va), np.asarray(vb)

    def paired_probes(self, a: str, b: str, chance: float) -> tuple[list[int], np.ndarray, np.ndarray]:
        """Seeds both methods have a probe accuracy for: |accuracy - chance| of each."""
        key = "probe_modality_from_fs"
        seeds = sorted({s for m, s in self.probes if m == a} & {s for m, s in self.probes if m == b})
        seeds = [s for s in seeds if key in self.probes[(a, s)] and key in self.probes[(b, s)]]
        gap = lambda m, s: abs(self.probes[(m, s)][key] - chance)  # noqa: E731
        return seeds, np.array([gap(a, s) for s in seeds]), np.array([gap(b, s) for s in seeds])


def _download(client: Any, run_id: str, name: str, into: Path) -> Path | None:
    try:
        return Path(client.download_artifacts(run_id, f"{EVALUATION_DIR}/{name}", str(into)))
    except Exception:  # noqa: BLE001 - a run without its evaluation is reported as such
        return None


def read_evaluation(client: Any, run_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    """(per-subject rows, summary) logged by ``raysys.reproduce.trial``; None when missing."""
    with tempfile.TemporaryDirectory(prefix="raysys-scores-") as tmp:
        rows_path = _download(client, run_id, "per_subject.csv", Path(tmp) / "a")
        summary_path = _download(client, run_id, "summary.json", Path(tmp) / "b")
        if rows_path is None or summary_path is None:
            return None
        with rows_path.open() as f:
            rows = [{**r, "psnr": float(r["psnr"]), "ssim": float(r["ssim"])} for r in csv.DictReader(f)]
        return rows, json.loads(summary_path.read_text())


def collect(plan: Plan, records: list[TrialRecord], tracking_uri: str) -> tuple[Scores, dict[tuple[str, int], str]]:
    """The Scores of every finished trial; and {(run key, seed): why it has none} for the others."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    method_of = {row.label: row.method for row in plan.rows}
    labels = {run.key: run.labels for run in plan.runs}
    scores, missing = Scores(), {}
    merged: dict[tuple[str, int, str], dict[Cell, list[tuple[float, float]]]] = {}
    best_baseline: dict[int, tuple[int, list[dict[str, Any]]]] = {}
    for record in records:
        if record.error or not record.run_id:
            missing[(record.key, record.seed)] = record.error or "the trial reported no MLflow run"
            continue
        evaluation = read_evaluation(client, record.run_id)
        if evaluation is None:
            missing[(record.key, record.seed)] = f"run {record.run_id} has no {EVALUATION_DIR}/ files"
            continue
        rows, summary = evaluation
        methods = list(dict.fromkeys(method_of[label] for label in labels[record.key]))
        model_rows = [r for r in rows if r["method"] == MODEL]
        for method in methods:
            for r in model_rows:
                merged.setdefault((method, record.seed, r["subject"]), {}).setdefault(
                    (r["inputs"], r["target"]), []).append((r["psnr"], r["ssim"]))
                scores.rows.append({"method": method, "run": record.key, "seed": record.seed, **_plain(r)})
            probe = (summary.get("disentanglement") or {}).get(MODEL)
            if probe:
                scores.probes[(method, record.seed)] = dict(probe)
        baseline_rows = [r for r in rows if r["method"] in BASELINE_NAMES]
        if len(baseline_rows) > best_baseline.get(record.seed, (-1, []))[0]:
            best_baseline[record.seed] = (len(baseline_rows), baseline_rows)
    for seed, (_, rows) in sorted(best_baseline.items()):
        for r in rows:
            method = BASELINE_NAMES[r["method"]]
            merged.setdefault((method, seed, r["subject"]), {}).setdefault((r["inputs"], r["target"]), []).append(
                (r["psnr"], r["ssim"]))
            scores.rows.append({"method": method, "run": "", "seed": seed, **_plain(r)})
    scores.cells = {k: {c: tuple(np.mean(v, axis=0)) for c, v in cells.items()} for k, cells in merged.items()}
    return scores, missing


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("subject", "inputs", "target", "psnr", "ssim")}

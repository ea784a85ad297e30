"""``dice.csv`` (one row per input mode, condition and region) and ``table.md`` (Ouyang et al.'s
Table 2 layout: rows = input modes, columns = N/A then each missing modality, cell = ``mean``)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from raysys.models.segmenter.regions import MEAN, REGION_NAMES
from raysys.segment.evaluation import ALL, MISSING, SubjectScore, conditions

COLUMNS = ("input_mode", "condition", "region", "dice_mean", "dice_std", "n")


def summary_rows(label: str, scores: Sequence[SubjectScore], modalities: Sequence[str]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation over the subjects where the region is defined;
    ``n`` = their number (std NaN when n < 2, mean NaN when n = 0)."""
    rows = []
    for condition in conditions(modalities):
        for region in REGION_NAMES:
            values = np.array([s.dice[region] for s in scores if s.condition == condition], dtype=float)
            values = values[~np.isnan(values)]
            n = int(values.size)
            rows.append({"input_mode": label, "condition": condition, "region": region,
                         "dice_mean": float(values.mean()) if n else math.nan,
                         "dice_std": float(values.std(ddof=1)) if n > 1 else math.nan, "n": n})
    return rows


def write_dice_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """One row per mode x condition x region; a mean or std that is undefined (``n`` = 0, or the
    std of one subject) is an empty field, never ``nan``."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(row[k]) for k in COLUMNS})
    return Path(path)


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else ""
    return value


def _cell(row: dict[str, Any] | None) -> str:
    if row is None or row["n"] == 0:
        return "–"
    return f"{row['dice_mean']:.3f} ({row['n']})"


def markdown_table(rows: Sequence[dict[str, Any]], modalities: Sequence[str], *, store: str, fold: int,
                   scored: int, complete: int, machine: str | None = None) -> str:
    """Rows = input modes in ``rows``' order, columns = N/A (all modalities) then each removed modality."""
    labels = list(dict.fromkeys(r["input_mode"] for r in rows))
    cells = {(r["input_mode"], r["condition"]): r for r in rows if r["region"] == MEAN}
    header = ["input", "N/A"] + list(modalities)
    lines = [
        f"Mean Dice of NCR, ED and ET (Ouyang et al. 2021, Table 2 layout) on the test fold {fold} of {store}.",
        "Columns: the modality removed at test time (N/A = every modality the subject has: each row's reference).",
        "Cells: mean over test subjects of the subject's 3-D Dice; in brackets n, the subjects where it is",
        "defined (a region counts where it is in the truth or the prediction).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for label in labels:
        row = [label, _cell(cells.get((label, ALL)))]
        row += [_cell(cells.get((label, f"{MISSING}{m}"))) for m in modalities]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"Test subjects: {scored}, {complete} of them with every modality; a missing-modality column",
              "scores the subjects that have that modality and another one.",
              "No trivial-predictor row: predicting background everywhere scores Dice 0 on every subject with",
              "tumour and is undefined elsewhere; the reference of each missing-modality cell is the N/A cell",
              "of its row (the same model and subjects with every modality)."]
    if machine:
        lines.append(f"Machine: {machine}.")
    return "\n".join(lines) + "\n"

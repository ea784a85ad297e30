"""``per_subject.csv``, ``table.csv`` and ``table.md`` (the MMHVAE paper's Table I layout).

per_subject.csv: ``method,subject,inputs,target,psnr,ssim`` — per-subject means over slices.
table.csv: ``method,inputs,target,n,psnr_mean,psnr_std,ssim_mean,ssim_std,p_value,best``
(stats over subjects; rule in ``raysys.evaluate.stats``). std is the sample std (ddof 1; 0 for
n = 1). table.md: one block per method; rows = input subsets (disentangle: sources), columns
= targets x (PSNR, SSIM), "mean (std)", the significantly best method's entries in bold.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Mapping, Sequence

from raysys.evaluate.cells import Cell
from raysys.evaluate.stats import cell_stats

PER_SUBJECT_COLUMNS = ("method", "subject", "inputs", "target", "psnr", "ssim")
TABLE_COLUMNS = ("method", "inputs", "target", "n", "psnr_mean", "psnr_std", "ssim_mean", "ssim_std", "p_value", "best")


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Path:
    path = Path(path)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="raise")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row[k] for k in columns})
    return path


def table_rows(rows: Sequence[Mapping[str, Any]], cells: Sequence[Cell], methods: Sequence[str]) -> list[dict[str, Any]]:
    """table.csv rows from per-subject rows: per evaluated cell (in ``cells`` order), per method
    (``methods`` order). Bonferroni over the number of evaluated cells."""
    by_cell: dict[tuple[str, str], dict[str, dict[str, tuple[float, float]]]] = {}
    for r in rows:
        by_cell.setdefault((r["inputs"], r["target"]), {}).setdefault(r["method"], {})[r["subject"]] = (r["psnr"], r["ssim"])
    evaluated = [c for c in cells if (c.label, c.target) in by_cell]
    out = []
    for cell in evaluated:
        scores = by_cell[(cell.label, cell.target)]
        subjects = sorted(set.intersection(*(set(v) for v in scores.values())))
        psnr = {m: [scores[m][s][0] for s in subjects] for m in scores}
        ssim = {m: [scores[m][s][1] for s in subjects] for m in scores}
        stats = {s.method: s for s in cell_stats(psnr, ssim, n_cells=len(evaluated))}
        for method in methods:
            if method in stats:
                s = stats[method]
                out.append({"method": method, "inputs": cell.label, "target": cell.target, "n": s.n,
                            "psnr_mean": s.psnr_mean, "psnr_std": s.psnr_std, "ssim_mean": s.ssim_mean,
                            "ssim_std": s.ssim_std, "p_value": s.p_value, "best": s.best})
    return out


def markdown_table(table: Sequence[Mapping[str, Any]], cells: Sequence[Cell], methods: Sequence[str], family: str,
                   modalities: Sequence[str]) -> str:
    """The Table I layout, one block per method; missing cells are "–"."""
    index = {(r["method"], r["inputs"], r["target"]): r for r in table}
    row_labels = list(dict.fromkeys(c.label for c in cells if any(k[1] == c.label for k in index)))
    row_name = "source" if family == "disentangle" else "inputs"
    parts = [f"Mean (std) over subjects; **bold** = significantly best in its cell (paired Wilcoxon on SSIM vs the "
             f"runner-up, Bonferroni over {len({(r['inputs'], r['target']) for r in table})} cells, p < 0.01).", ""]
    for method in methods:
        parts.append(f"### {method}")
        parts.append("")
        parts.append(f"| {row_name} | " + " | ".join(f"{t} PSNR | {t} SSIM" for t in modalities) + " |")
        parts.append("|---|" + "---:|" * (2 * len(modalities)))
        for label in row_labels:
            cols = []
            for t in modalities:
                r = index.get((method, label, t))
                if r is None:
                    cols += ["–", "–"]
                    continue
                psnr, ssim = f"{r['psnr_mean']:.2f} ({r['psnr_std']:.2f})", f"{r['ssim_mean']:.3f} ({r['ssim_std']:.3f})"
                cols += [f"**{psnr}**", f"**{ssim}**"] if r["best"] else [psnr, ssim]
            parts.append(f"| {label} | " + " | ".join(cols) + " |")
        parts.append("")
    return "\n".join(parts)

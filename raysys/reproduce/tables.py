"""The report's tables in the papers' layouts (markdown), from ``Scores``.

Cells are "mean (std)" over the units (test subject x seed) of per-subject means; SSIM as a
fraction. The papers' own numbers sit beside ours ("paper" rows or "[paper]" entries): a
different dataset, for reference only.
"""

from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np

from raysys.reproduce import paper_numbers
from raysys.reproduce.plan import Plan
from raysys.reproduce.scores import BASELINE_NAMES, Scores, is_synthesis

BASELINES = tuple(BASELINE_NAMES.values())
PROBE_KEYS = ("probe_modality_from_fs", "silhouette_z_by_modality", "silhouette_fs_by_subject")
NEAR_CHANCE = 0.1  # a probe accuracy within this of chance is "near chance"


def _mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, int(v.size)


def _fmt(mean: float, std: float | None = None, digits: int = 2) -> str:
    if not math.isfinite(mean):
        return "–"
    return f"{mean:.{digits}f}" + (f" ({std:.{digits}f})" if std is not None and math.isfinite(std) else "")


def table_methods(plan: Plan, scores: Scores) -> list[str]:
    """Rows' methods in the experiment's order, then the baselines that were scored."""
    have = set(scores.methods())
    methods = list(dict.fromkeys(r.method for r in plan.rows))
    return [m for m in methods if m in have] + [b for b in BASELINES if b in have]


def _target_values(scores: Scores, method: str, target: str, metric: str) -> list[float]:
    """Per unit: the mean over the method's synthesis cells with ``target``."""
    return list(scores.values(method, metric, keep=lambda c: is_synthesis(c) and c[1] == target).values())


def ouyang_table(plan: Plan, scores: Scores, modalities: Sequence[str]) -> str:
    """Ouyang Table 1 (c) layout: rows = methods, columns = targets, "PSNR/SSIM" of the cross
    reconstructions averaged over the other sources; the paper's BraTS value in brackets."""
    lines = ["| Methods | " + " | ".join(f"{t} PSNR/SSIM [paper]" for t in modalities) + " |",
             "|---|" + "---|" * len(modalities)]
    for method in table_methods(plan, scores):
        cells = []
        for t in modalities:
            psnr, _, n = _mean_std(_target_values(scores, method, t, "psnr"))
            ssim, _, _ = _mean_std(_target_values(scores, method, t, "ssim"))
            paper = paper_numbers.OUYANG_TABLE1.get(method, {}).get(t)
            ours = f"{psnr:.2f}/{ssim:.3f}" if n else "–"
            cells.append(ours + (f" [{paper[0]:.2f}/{paper[1]:.3f}]" if paper else ""))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def probe_table(plan: Plan, scores: Scores, chance: float) -> str:
    """Per row: probe accuracy on f(s) (chance shown), silhouettes of z and f(s); mean (std) over seeds."""
    lines = [f"| Methods | probe accuracy on f(s) (chance {chance:.2f}) | near chance (within {NEAR_CHANCE}) | "
             "silhouette of z by modality | silhouette of f(s) by subject | seeds |", "|---|---|---|---|---|---|"]
    for method in dict.fromkeys(r.method for r in plan.rows):
        runs = [v for (m, _), v in sorted(scores.probes.items()) if m == method]
        if not runs:
            lines.append(f"| {method} | – | – | – | – | 0 |")
            continue
        stats = {k: _mean_std([r[k] for r in runs if k in r]) for k in PROBE_KEYS}
        acc = stats["probe_modality_from_fs"][0]
        near = "yes" if math.isfinite(acc) and abs(acc - chance) <= NEAR_CHANCE else "no"
        lines.append(f"| {method} | " + " | ".join(_fmt(*stats[k][:2], digits=3) for k in PROBE_KEYS[:1]) + f" | {near} | "
                     + " | ".join(_fmt(*stats[k][:2], digits=3) for k in PROBE_KEYS[1:]) + f" | {len(runs)} |")
    return "\n".join(lines)


def subsets(modalities: Sequence[str]) -> list[tuple[str, ...]]:
    return [c for r in range(1, len(modalities) + 1) for c in itertools.combinations(modalities, r)]


def mmhvae_table1(plan: Plan, scores: Scores, modalities: Sequence[str]) -> str:
    """MMHVAE Table I layout: one block per input subset (bullets = inputs), a row per method,
    columns = targets x (PSNR, SSIM); a target among the inputs is harmonisation. The paper's
    rows ("paper: ...") follow ours where the paper has the subset (inputs without t1)."""
    methods = table_methods(plan, scores)
    header = "| Method | " + " | ".join(modalities) + " | " + " | ".join(f"{t} PSNR | {t} SSIM" for t in modalities) + " |"
    lines = [header, "|---|" + "---|" * (len(modalities) * 3)]
    for subset in subsets(modalities):
        label = "+".join(subset)
        bullets = " | ".join("●" if m in subset else "○" for m in modalities)
        for method in methods:
            cells = []
            for t in modalities:
                for k in ("psnr", "ssim"):
                    values = [v[{"psnr": 0, "ssim": 1}[k]] for (m, _, _), c in scores.cells.items()
                              if m == method for cell, v in c.items() if cell == (label, t)]
                    mean, std, _ = _mean_std(values)
                    cells.append(_fmt(mean, std, 2 if k == "psnr" else 3))
            if any(c != "–" for c in cells):
                lines.append(f"| {method} | {bullets} | " + " | ".join(cells) + " |")
        for method in ("MMHVAE", "MoPoE", "MHVAE", "MM-GAN"):
            paper = paper_numbers.mmhvae_table1(method, subset)
            if paper:
                cells = [(_fmt(paper[t][0]) + " | " + _fmt(paper[t][1], digits=3)) if t in paper else "– | –" for t in modalities]
                lines.append(f"| *paper: {method}* | {bullets} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ablation_table(plan: Plan, scores: Scores, modalities: Sequence[str]) -> str:
    """MMHVAE Table II layout: sections of settings, columns = targets x (PSNR, SSIM) averaged over
    every input subset without the target; the paper's value (L_max = 7) in brackets."""
    lines = ["| Setting | " + " | ".join(f"{t} PSNR [paper] | {t} SSIM [paper]" for t in modalities) + " |",
             "|---|" + "---|" * (2 * len(modalities))]
    section = None
    for row in plan.rows:
        if row.section != section:
            section = row.section
            lines.append(f"| **{section}** |" + " |" * (2 * len(modalities)))
        paper = paper_numbers.mmhvae_table2(row.label)
        cells = []
        for t in modalities:
            for i, k in enumerate(("psnr", "ssim")):
                mean, std, _ = _mean_std(_target_values(scores, row.method, t, k))
                ref = f" [{paper[t][i]:.{2 if i == 0 else 3}f}]" if t in paper else ""
                cells.append(_fmt(mean, std, 2 if i == 0 else 3) + ref)
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    for b in BASELINES:
        if b in scores.methods():
            cells = []
            for t in modalities:
                for k in ("psnr", "ssim"):
                    mean, std, _ = _mean_std(_target_values(scores, b, t, k))
                    cells.append(_fmt(mean, std, 2 if k == "psnr" else 3))
            lines.append(f"| baseline {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

"""The statistics rule of the tables (the papers' rule, made exact).

Per cell (input subset, target), methods are ranked by mean SSIM over subjects. Each method
is compared with the best OTHER method of the cell (for the top method: the runner-up) by a
paired, two-sided Wilcoxon signed-rank test on the per-subject SSIMs
(``scipy.stats.wilcoxon``, default zero handling). p-values are Bonferroni-corrected by the
number of cells in the table and clipped at 1. A method is ``best`` when it is the top method
and its corrected p against the runner-up is < 0.01 (then it is significantly better than
every other method, all of which rank at or below the runner-up).

Sentinel: p = 1.0 where the test is undefined — fewer than 2 paired subjects, all paired
differences zero, or a single method in the cell — so no NaN is written.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence

import numpy as np

ALPHA = 0.01


def wilcoxon_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided paired Wilcoxon signed-rank p of ``a`` [n] vs ``b`` [n]; 1.0 where undefined."""
    from scipy.stats import wilcoxon

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"wilcoxon_p: paired samples must be [n] and [n], got {a.shape} and {b.shape}")
    d = a - b
    if d.size < 2 or not np.any(d != 0):
        return 1.0
    try:
        p = float(wilcoxon(a, b).pvalue)
    except ValueError:
        return 1.0
    return p if math.isfinite(p) else 1.0


def bonferroni(p: float, tests: int) -> float:
    """``min(1, p * tests)``."""
    if tests < 1:
        raise ValueError(f"bonferroni: tests must be >= 1, got {tests}")
    return min(1.0, float(p) * tests)


@dataclasses.dataclass(frozen=True)
class MethodStats:
    method: str
    n: int
    psnr_mean: float
    psnr_std: float
    ssim_mean: float
    ssim_std: float
    p_value: float  # corrected, vs the best other method of the cell
    best: bool


def _std(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1)) if values.size > 1 else 0.0


def cell_stats(psnr: Mapping[str, Sequence[float]], ssim: Mapping[str, Sequence[float]], n_cells: int,
               alpha: float = ALPHA) -> list[MethodStats]:
    """Stats of one cell from per-subject scores ``{method: [n]}`` (the same subjects, same order).

    Returns one ``MethodStats`` per method, ordered by mean SSIM (best first; ties by name).
    """
    methods = sorted(ssim, key=lambda k: (-float(np.mean(ssim[k])), k))
    means = {k: float(np.mean(ssim[k])) for k in methods}
    out = []
    for k in methods:
        others = [o for o in methods if o != k]
        p = bonferroni(wilcoxon_p(ssim[k], ssim[others[0]]), n_cells) if others else 1.0
        is_best = bool(k == methods[0] and others and means[k] > means[others[0]] and p < alpha)
        s, q = np.asarray(ssim[k], dtype=np.float64), np.asarray(psnr[k], dtype=np.float64)
        out.append(MethodStats(k, int(s.size), float(q.mean()), _std(q), float(s.mean()), _std(s), p, is_best))
    return out

"""Claim checks: a paired, two-sided Wilcoxon signed-rank test and effect sizes.

For a claim "A beats B", the paired differences d = A - B (for a lower-is-better metric B - A,
so d > 0 always means "as claimed") over the units (test subject x seed, or seed for one value
per run) give:

* ``mean_diff``: the mean of d, in the metric's unit (dB for PSNR);
* ``rank_biserial``: the matched-pairs rank-biserial correlation (R+ - R-) / (R+ + R-) over the
  non-zero d ranked by |d| (average ranks for ties): +1 = every pair as claimed, -1 = every pair against;
* ``p``: ``scipy.stats.wilcoxon`` two-sided (``raysys.evaluate.stats.wilcoxon_p``, the tables' test).

Verdict at ``ALPHA`` = 0.01 (the papers' threshold): ``held`` when mean_diff > 0 and p < ALPHA;
``not held`` otherwise (the reason says whether the data point the other way); ``not testable``
when a side has no scores, or when n pairs cannot reach p < ALPHA at all: the smallest two-sided
exact p of n pairs is 2 / 2^n, so n <= 7 can never be significant at 0.01.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
from scipy.stats import rankdata

from raysys.evaluate.stats import wilcoxon_p

ALPHA = 0.01
HELD, NOT_HELD, NOT_TESTABLE = "held", "not held", "not testable"


@dataclasses.dataclass(frozen=True)
class Check:
    n: int
    mean_diff: float
    rank_biserial: float
    p: float
    verdict: str
    reason: str


def smallest_p(n: int) -> float:
    """The smallest two-sided p the exact Wilcoxon signed-rank test can give with ``n`` pairs."""
    return min(1.0, 2.0 / 2.0**n) if n > 0 else 1.0


def rank_biserial(d: Sequence[float]) -> float:
    """Matched-pairs rank-biserial correlation of the differences ``d`` (0 when all are zero)."""
    d = np.asarray(d, dtype=np.float64)
    d = d[d != 0]
    if d.size == 0:
        return 0.0
    ranks = rankdata(np.abs(d))
    return float((ranks[d > 0].sum() - ranks[d < 0].sum()) / ranks.sum())


def check(better: Sequence[float], worse: Sequence[float], higher_is_better: bool = True, alpha: float = ALPHA) -> Check:
    """The claim "``better`` beats ``worse``" on paired samples (same units, same order)."""
    a, b = np.asarray(better, dtype=np.float64), np.asarray(worse, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"check: paired samples must be [n] and [n], got {a.shape} and {b.shape}")
    n = int(a.size)
    if n == 0:
        return Check(0, math.nan, math.nan, math.nan, NOT_TESTABLE, "no paired scores")
    d = (a - b) if higher_is_better else (b - a)
    mean_diff, r = float(d.mean()), rank_biserial(d)
    if smallest_p(n) >= alpha:
        return Check(n, mean_diff, r, math.nan, NOT_TESTABLE,
                     f"n = {n} pairs: the smallest two-sided Wilcoxon p is {smallest_p(n):.3g}, not < {alpha:g} "
                     f"(needs n >= {min_pairs(alpha)}: more seeds or test subjects)")
    p = wilcoxon_p(a, b)
    if mean_diff > 0 and p < alpha:
        return Check(n, mean_diff, r, p, HELD, f"p < {alpha:g}, as claimed")
    if mean_diff < 0 and p < alpha:
        return Check(n, mean_diff, r, p, NOT_HELD, f"significant the other way (p < {alpha:g})")
    direction = "as claimed" if mean_diff > 0 else "against the claim" if mean_diff < 0 else "no difference"
    return Check(n, mean_diff, r, p, NOT_HELD, f"p >= {alpha:g} ({direction})")


def min_pairs(alpha: float = ALPHA) -> int:
    """The fewest pairs whose smallest two-sided p is below ``alpha``."""
    n = 1
    while smallest_p(n) >= alpha:
        n += 1
    return n

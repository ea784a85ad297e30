"""The statistics rule: paired Wilcoxon vs the best other method, Bonferroni over cells, best at p < 0.01."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import wilcoxon

from raysys.evaluate.stats import bonferroni, cell_stats, wilcoxon_p


def test_wilcoxon_p_is_scipys_two_sided_paired_test():
    a = [0.91, 0.85, 0.88, 0.93, 0.80, 0.87, 0.90, 0.86]
    b = [0.71, 0.80, 0.79, 0.75, 0.74, 0.78, 0.80, 0.77]
    # all 8 differences positive -> exact two-sided p = 2 / 2**8
    assert wilcoxon_p(a, b) == pytest.approx(2 / 256)
    assert wilcoxon_p(a, b) == pytest.approx(float(wilcoxon(a, b).pvalue))
    c = [0.5, 0.6, 0.4, 0.7, 0.55]
    d = [0.52, 0.58, 0.45, 0.69, 0.50]
    assert wilcoxon_p(c, d) == pytest.approx(float(wilcoxon(c, d).pvalue))


def test_wilcoxon_sentinels_instead_of_nan():
    assert wilcoxon_p([0.5], [0.4]) == 1.0              # n < 2
    assert wilcoxon_p([0.5, 0.6], [0.5, 0.6]) == 1.0    # all differences zero
    with pytest.raises(ValueError, match="paired"):
        wilcoxon_p([1, 2, 3], [1, 2])


def test_bonferroni_multiplies_and_clips():
    assert bonferroni(0.001, 5) == pytest.approx(0.005)
    assert bonferroni(0.3, 5) == 1.0
    with pytest.raises(ValueError):
        bonferroni(0.1, 0)


def test_best_is_the_top_method_significantly_better_than_the_runner_up():
    rng = np.random.default_rng(0)
    n = 12
    base = rng.uniform(0.5, 0.6, n)
    ssim = {"model": base + 0.2, "baseline:mean": base + 0.05 + rng.uniform(0, 0.01, n), "baseline:zeros": base - 0.3}
    psnr = {k: v * 40 for k, v in ssim.items()}
    stats = cell_stats(psnr, ssim, n_cells=2)
    assert [s.method for s in stats] == ["model", "baseline:mean", "baseline:zeros"]
    top, second, third = stats
    # every difference model - mean is positive: exact p = 2 / 2**12, times 2 cells
    assert top.p_value == pytest.approx(2 * 2 / 2**12)
    assert top.best and not second.best and not third.best
    # the others are compared with the best other method: the model
    assert second.p_value == pytest.approx(min(1.0, 2 * float(wilcoxon(ssim["baseline:mean"], ssim["model"]).pvalue)))
    assert top.n == n and top.ssim_mean == pytest.approx(float(np.mean(ssim["model"])))
    assert top.ssim_std == pytest.approx(float(np.std(ssim["model"], ddof=1)))
    # the same data over many cells: the corrected p is no longer < 0.01
    many = cell_stats(psnr, ssim, n_cells=40)
    assert many[0].p_value == pytest.approx(min(1.0, 40 * 2 / 2**12)) and not many[0].best


def test_six_subjects_can_never_be_significant_after_correction():
    ssim = {"a": [0.9] * 6, "b": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]}
    stats = cell_stats(ssim, ssim, n_cells=1)
    assert stats[0].method == "a" and stats[0].p_value == pytest.approx(2 / 64) and not stats[0].best

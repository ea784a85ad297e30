"""claims.py on hand-made numbers: the verdicts, the Wilcoxon p and the effect sizes."""

from __future__ import annotations

import math

import pytest

from raysys.reproduce.claims import HELD, NOT_HELD, NOT_TESTABLE, check, min_pairs, rank_biserial, smallest_p


def test_every_pair_better_holds_with_the_exact_smallest_p():
    worse = [20.0, 21.0, 19.5, 22.0, 18.0, 20.5, 21.5, 19.0, 23.0, 20.0]
    better = [w + 1.0 + 0.1 * i for i, w in enumerate(worse)]  # distinct differences: exact test, no ties
    result = check(better, worse)
    assert result.verdict == HELD and result.n == 10
    assert result.mean_diff == pytest.approx(1.45)
    assert result.rank_biserial == 1.0
    assert result.p == pytest.approx(2 / 2**10)  # two-sided exact: both extreme sign patterns


def test_significant_the_other_way_is_not_held_and_says_so():
    worse = [float(i) for i in range(10)]
    better = [w - 0.5 - 0.01 * i for i, w in enumerate(worse)]
    result = check(better, worse)
    assert result.verdict == NOT_HELD and "other way" in result.reason
    assert result.mean_diff < 0 and result.rank_biserial == -1.0 and result.p < 0.01


def test_mixed_signs_are_not_held_with_a_p_above_alpha():
    d = [0.5, -0.4, 0.3, -0.6, 0.2, -0.1, 0.7, -0.8, 0.05, -0.02]
    result = check([10 + x for x in d], [10.0] * 10)
    assert result.verdict == NOT_HELD and result.p > 0.01


def test_too_few_pairs_are_not_testable_and_say_why():
    result = check([2.0] * 6, [1.0] * 6)
    assert result.verdict == NOT_TESTABLE and math.isnan(result.p)
    assert "n = 6" in result.reason and "0.0312" in result.reason and "n >= 8" in result.reason
    assert result.mean_diff == 1.0  # the effect is still reported
    assert check([], []).verdict == NOT_TESTABLE


def test_lower_is_better_flips_the_direction():
    better = [0.05 + 0.001 * i for i in range(9)]  # distance to chance: smaller is the claim
    worse = [0.6 + 0.01 * i for i in range(9)]
    result = check(better, worse, higher_is_better=False)
    assert result.verdict == HELD and result.mean_diff > 0 and result.rank_biserial == 1.0


def test_rank_biserial_and_the_smallest_p_by_hand():
    assert rank_biserial([1.0, -2.0, 3.0]) == pytest.approx((1 + 3 - 2) / 6)
    assert rank_biserial([0.0, 0.0]) == 0.0
    assert rank_biserial([1.0, -1.0]) == 0.0  # tied |d|: average ranks
    assert smallest_p(7) == pytest.approx(2 / 128) and smallest_p(8) == pytest.approx(2 / 256)
    assert min_pairs(0.01) == 8 and min_pairs(0.05) == 6


def test_unpaired_shapes_are_refused():
    with pytest.raises(ValueError, match="paired"):
        check([1.0, 2.0], [1.0])

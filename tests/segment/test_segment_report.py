"""dice.csv rows and the Table 2 layout from hand-made per-subject scores; conditions per subject."""

from __future__ import annotations

import csv
import math

import numpy as np

from raysys.segment.evaluation import SubjectScore, condition_available, conditions
from raysys.segment.report import COLUMNS, markdown_table, summary_rows, write_dice_csv
from raysys.segment.variants import Variant, variants

MODALITIES = ("t1", "t2")
NAN = math.nan


def score(subject, condition, ncr, ed, et, wt=NAN, tc=NAN):
    mean = float(np.nanmean([ncr, ed, et])) if not all(math.isnan(v) for v in (ncr, ed, et)) else NAN
    return SubjectScore(subject, condition, {"NCR": ncr, "ED": ed, "ET": et, "WT": wt, "TC": tc, "mean": mean})


def test_rows_average_defined_subjects_and_count_them(tmp_path):
    scores = [score("a", "all", 0.8, 0.6, NAN), score("b", "all", 0.4, NAN, NAN), score("c", "all", NAN, NAN, NAN),
              score("a", "missing:t1", 0.5, 0.5, 0.2)]
    rows = summary_rows("standard_zero", scores, MODALITIES)
    assert len(rows) == len(conditions(MODALITIES)) * 6
    by = {(r["condition"], r["region"]): r for r in rows}
    assert by[("all", "NCR")]["n"] == 2 and math.isclose(by[("all", "NCR")]["dice_mean"], 0.6)
    assert math.isclose(by[("all", "NCR")]["dice_std"], np.std([0.8, 0.4], ddof=1))
    assert by[("all", "mean")]["n"] == 2 and math.isclose(by[("all", "mean")]["dice_mean"], (0.7 + 0.4) / 2)
    assert by[("all", "ET")]["n"] == 0 and math.isnan(by[("all", "ET")]["dice_mean"])
    assert by[("missing:t1", "mean")]["n"] == 1 and math.isnan(by[("missing:t1", "mean")]["dice_std"])
    assert by[("missing:t2", "mean")]["n"] == 0  # no subject scored under it
    path = write_dice_csv(rows, tmp_path / "dice.csv")
    with open(path) as handle:
        reader = csv.reader(handle)
        assert tuple(next(reader)) == COLUMNS == ("input_mode", "condition", "region", "dice_mean", "dice_std", "n")
        written = list(reader)
        assert len(written) == len(rows) and not any("nan" in field.lower() for row in written for field in row)
        assert ["standard_zero", "all", "ET", "", "", "0"] in written   # undefined: empty, with its count
    table = markdown_table(rows + summary_rows("fused_anatomy", scores[:1], MODALITIES), MODALITIES, store="s", fold=0,
                           scored=3, complete=2, machine="box")
    lines = table.splitlines()
    assert "| input | N/A | t1 | t2 |" in lines
    assert "| standard_zero | 0.550 (2) | 0.400 (1) | – |" in lines
    assert "| fused_anatomy | 0.700 (1) | – | – |" in lines
    assert "Machine: box." in lines


def test_conditions_apply_to_the_modalities_a_subject_has():
    has = np.array([True, False, True])
    mods = ("a", "b", "c")
    assert condition_available("all", mods, has).tolist() == [True, False, True]
    assert condition_available("missing:a", mods, has).tolist() == [False, False, True]
    assert condition_available("missing:b", mods, has) is None  # nothing to remove
    assert condition_available("missing:a", mods, np.array([True, False, False])) is None  # nothing would be left


def test_variants_of_all_and_hide_prob():
    assert [v.label for v in variants("standard_avg", 0.0)] == ["standard_avg"]
    chosen = variants("all", 0.25)
    assert len(chosen) == 8 and chosen[-1] == Variant("fused_anatomy", 0.25) and chosen[-1].label == "fused_anatomy_hide0.25"

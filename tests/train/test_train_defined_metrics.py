"""Validation metrics that no sample defines are left out and counted, never logged as NaN."""

from __future__ import annotations

import math

from raysys.train.epoch_loop import defined_metrics


def test_undefined_metrics_are_left_out_and_named():
    kept, left_out = defined_metrics({"psnr": 21.0, "ssim/t1_to_t2": math.nan, "ssim/t2_to_t1": 0.5, "a": math.nan})
    assert kept == {"psnr": 21.0, "ssim/t2_to_t1": 0.5}
    assert left_out == ["a", "ssim/t1_to_t2"]
    assert not any(math.isnan(v) for v in kept.values())

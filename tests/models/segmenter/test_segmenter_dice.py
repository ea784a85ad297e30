"""Labels, classes, regions and the per-sample Dice rule on hand-made label maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from raysys.models.segmenter.model import relative_bins
from raysys.models.segmenter.regions import REGIONS, class_mean, classes_to_labels, labels_to_classes, region_dice, region_masks


def test_labels_and_classes_round_trip_and_unknown_labels_raise():
    labels = torch.tensor([[0, 1, 2, 4]])
    assert labels_to_classes(labels).tolist() == [[0, 1, 2, 3]]
    assert torch.equal(classes_to_labels(labels_to_classes(labels)), labels)
    with pytest.raises(ValueError, match="BraTS"):
        labels_to_classes(torch.tensor([0, 3]))


def test_regions_are_the_classes_and_the_brats_unions():
    masks = region_masks(torch.tensor([[0, 1, 2, 4]]))[0]  # [5 regions, 4 pixels]
    got = {name: masks[i].tolist() for i, name in enumerate(REGIONS)}
    assert got == {"NCR": [False, True, False, False], "ED": [False, False, True, False], "ET": [False, False, False, True],
                   "WT": [False, True, True, True], "TC": [False, True, False, True]}


def test_dice_on_hand_made_maps():
    truth = torch.zeros(2, 8, 8, dtype=torch.long)
    truth[0, 0:2, 0:2] = 1  # NCR, 4 px
    truth[0, 0:2, 2:4] = 2  # ED, 4 px
    pred = torch.zeros_like(truth)
    pred[0, 0:2, 0] = 1  # 2 px of NCR, all inside the true NCR
    pred[0, 0:2, 1:4] = 2  # 6 px of ED, 4 inside the true ED
    pred[1, 5, 5] = 4  # a false positive on a tumour-free sample
    dice = region_dice(pred, truth)
    ncr, ed, et, wt, tc = dice[0].tolist()
    assert ncr == pytest.approx(2 * 2 / (2 + 4), abs=1e-5) and ed == pytest.approx(2 * 4 / (6 + 4), abs=1e-5)
    assert math.isnan(et)  # in neither prediction nor truth: undefined, left out of means
    assert wt == pytest.approx(1.0, abs=1e-5) and tc == pytest.approx(2 * 2 / (2 + 4), abs=1e-5)
    # The tumour-free sample: the false-positive ET counts as 0 in ET and in the regions holding
    # label 4 (WT, TC); NCR and ED are in neither prediction nor truth: undefined.
    assert dice[1, [2, 3, 4]].tolist() == [0.0, 0.0, 0.0]
    assert torch.isnan(dice[1, [0, 1]]).all()
    means = class_mean(dice)
    assert means[0].item() == pytest.approx((2 / 3 + 0.8) / 2, abs=1e-5) and means[1].item() == 0.0
    # 3-D volumes are scored the same way (a subject's slices stacked).
    assert region_dice(pred[None], truth[None]).shape == (1, 5)


def test_all_empty_gives_nan_mean():
    empty = torch.zeros(1, 4, 4, dtype=torch.long)
    assert torch.isnan(region_dice(empty, empty)).all() and torch.isnan(class_mean(region_dice(empty, empty))).all()


def test_relative_bins_are_the_mean_baselines_bins():
    from raysys.evaluate.baselines import position_bins

    for count, bins in [(7, 3), (10, 10), (13, 5), (64, 9)]:
        index = np.arange(count)
        expected = position_bins(index, count, bins)
        got = relative_bins(torch.tensor((index + 0.5) / count, dtype=torch.float32), bins)
        assert got.tolist() == expected.tolist()

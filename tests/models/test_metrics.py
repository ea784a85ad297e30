"""masked_psnr / masked_ssim (the Tune objective): exact values on hand-made images, the fixed data
range, clipping, the mask, NaN for an empty mask, and agreement with torchmetrics' own SSIM."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from raysys.models.metrics import masked_psnr, masked_ssim

RANGE = (-5.0, 5.0)  # the z-scored stores' value_range: a data range of 10


def full_mask(b: int, h: int, w: int) -> torch.Tensor:
    return torch.ones(b, h, w, dtype=torch.bool)


def test_psnr_of_a_known_mse_uses_the_fixed_data_range():
    target = torch.zeros(1, 4, 4)
    pred = target.clone()
    pred[0, 0, 0] = 2.0  # MSE = 2^2 / 16 = 0.25
    got = masked_psnr(pred, target, full_mask(1, 4, 4), RANGE)
    assert got.item() == pytest.approx(10 * math.log10(10.0**2 / 0.25), rel=1e-6)  # 26.02 dB
    # Same images, another fixed range: only the peak changes, whatever the images' own range.
    assert masked_psnr(pred, target, full_mask(1, 4, 4), (0.0, 4.0)).item() == pytest.approx(
        10 * math.log10(4.0**2 / 0.25), rel=1e-6)


def test_psnr_clips_predictions_and_targets_to_the_range():
    target = torch.zeros(1, 4, 4)
    far = target.clone()
    far[0, 1, 1] = 100.0  # clipped to 5: error 5, MSE 25 / 16
    edge = target.clone()
    edge[0, 1, 1] = 5.0
    mask = full_mask(1, 4, 4)
    assert masked_psnr(far, target, mask, RANGE).item() == pytest.approx(10 * math.log10(100 / (25 / 16)), rel=1e-6)
    assert masked_psnr(far, target, mask, RANGE).item() == masked_psnr(edge, target, mask, RANGE).item()
    below = torch.full((1, 4, 4), -9.0)  # both clipped to -5: identical
    assert masked_psnr(below, torch.full((1, 4, 4), -5.0), mask, RANGE).item() == math.inf


def test_psnr_counts_only_the_masked_pixels_and_is_per_image():
    target = torch.zeros(2, 4, 4)
    pred = target.clone()
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    mask[:, :2, :2] = True  # 4 pixels per image
    pred[0, 0, 0] = 1.0  # inside: MSE 1 / 4 over the mask (not 1 / 16 over the image)
    pred[0, 3, 3] = 5.0  # outside: ignored
    pred[1, 3, :] = 4.0  # image 1: errors only outside its mask
    got = masked_psnr(pred, target, mask, RANGE)
    assert got.shape == (2,)
    assert got[0].item() == pytest.approx(10 * math.log10(100 / 0.25), rel=1e-6)
    assert got[1].item() == math.inf  # identical inside the mask


def test_psnr_is_nan_for_an_empty_mask_only():
    pred, target = torch.ones(2, 4, 4), torch.zeros(2, 4, 4)
    mask = full_mask(2, 4, 4)
    mask[1] = False
    got = masked_psnr(pred, target, mask, RANGE)
    assert got[0].item() == pytest.approx(10 * math.log10(100 / 1.0), rel=1e-6) and math.isnan(got[1].item())


def test_ssim_of_constant_images_is_the_closed_form():
    # Constant images: every local variance and covariance is 0, so the SSIM map is
    # (2 a b + C1) / (a^2 + b^2 + C1) at every pixel, with C1 = (0.01 L)^2 for the data range L
    # (to float32 accuracy: the local variances of a constant come out ~1e-7, not exactly 0).
    a, b, lo, hi = 0.2, 0.6, 0.0, 1.0
    c1 = (0.01 * (hi - lo)) ** 2
    pred, target = torch.full((1, 32, 32), a), torch.full((1, 32, 32), b)
    got = masked_ssim(pred, target, full_mask(1, 32, 32), (lo, hi))
    assert got.item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-3)
    # The range matters (C1 grows with it), and values are clipped to it first: 3.0 counts as 1.0.
    wide = masked_ssim(pred, target, full_mask(1, 32, 32), (0.0, 10.0)).item()
    assert wide == pytest.approx((2 * a * b + 0.01) / (a * a + b * b + 0.01), rel=1e-3)
    clipped = masked_ssim(torch.full((1, 32, 32), 3.0), target, full_mask(1, 32, 32), (lo, hi)).item()
    assert clipped == pytest.approx((2 * 1.0 * b + c1) / (1.0 + b * b + c1), rel=1e-3)


def test_ssim_of_identical_images_is_one():
    image = torch.rand(2, 32, 32, generator=torch.Generator().manual_seed(0)) * 10 - 5
    torch.testing.assert_close(masked_ssim(image, image, full_mask(2, 32, 32), RANGE), torch.ones(2))


def test_unmasked_ssim_equals_torchmetrics_ssim():
    gen = torch.Generator().manual_seed(1)
    pred, target = torch.rand(3, 40, 36, generator=gen), torch.rand(3, 40, 36, generator=gen)
    target = 0.5 * target + 0.5 * pred  # correlated: SSIM well away from 0
    expected = structural_similarity_index_measure(pred[:, None], target[:, None], data_range=(0.0, 1.0), reduction="none")
    got = masked_ssim(pred, target, full_mask(3, 40, 36), (0.0, 1.0))
    torch.testing.assert_close(got, expected)
    assert bool((got > 0.3).all())


def test_ssim_averages_the_map_inside_the_mask_only():
    gen = torch.Generator().manual_seed(2)
    pred, target = torch.rand(1, 48, 48, generator=gen), torch.rand(1, 48, 48, generator=gen)
    mask = torch.zeros(1, 48, 48, dtype=torch.bool)
    mask[:, 8:24, 8:24] = True
    _, ssim_map = structural_similarity_index_measure(pred[:, None], target[:, None], data_range=(0.0, 1.0),
                                                      reduction="none", return_full_image=True)
    got = masked_ssim(pred, target, mask, (0.0, 1.0))
    torch.testing.assert_close(got, ssim_map[:, 0][mask].mean()[None])
    # Pixels farther from the mask than the 11x11 window's radius (5) cannot change the score;
    # the same change does change the unmasked score.
    changed = pred.clone()
    changed[:, 30:, 30:] = 1.0 - changed[:, 30:, 30:]
    torch.testing.assert_close(masked_ssim(changed, target, mask, (0.0, 1.0)), got)
    assert masked_ssim(changed, target, full_mask(1, 48, 48), (0.0, 1.0)).item() != pytest.approx(
        masked_ssim(pred, target, full_mask(1, 48, 48), (0.0, 1.0)).item())


def test_ssim_is_nan_for_an_empty_mask_only():
    image = torch.rand(2, 32, 32, generator=torch.Generator().manual_seed(3))
    mask = full_mask(2, 32, 32)
    mask[0] = False
    got = masked_ssim(image, image, mask, (0.0, 1.0))
    assert math.isnan(got[0].item()) and got[1].item() == pytest.approx(1.0, abs=1e-6)

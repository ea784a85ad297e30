"""Similarity margin loss (eq. 2) against a direct loop, its zero and gradient; fusion masking."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from raysys.models.disentangle import fuse_anatomy, similarity_margin_loss
from raysys.models.disentangle.losses import latent_consistency, masked_mean, pair_l1


def loop_similarity(fs, z, subject, available, alpha_s, alpha_z):
    """Eq. (2) as written in the contract: explicit loops over (p, q, i, j)."""
    terms_s, terms_z = [], []
    b, m = available.shape
    for p, q, i, j in itertools.product(range(b), range(b), range(m), range(m)):
        if subject[p] == subject[q] or i == j:
            continue
        if not (available[p, i] and available[p, j] and available[q, i]):
            continue
        cos = lambda u, v: F.cosine_similarity(u, v, dim=0)  # noqa: E731
        terms_s.append(torch.relu(alpha_s - cos(fs[p, i], fs[p, j]) + cos(fs[p, i], fs[q, i])))
        terms_z.append(torch.relu(alpha_z - cos(z[p, i], z[q, i]) + cos(z[p, i], z[p, j])))
    if not terms_s:
        return torch.tensor(0.0), torch.tensor(0.0)
    return torch.stack(terms_s).mean(), torch.stack(terms_z).mean()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_similarity_loss_matches_direct_loop(seed):
    g = torch.Generator().manual_seed(seed)
    b, m = 5, 4
    fs, z = torch.randn(b, m, 12, generator=g), torch.randn(b, m, 6, generator=g)
    subject = torch.tensor([0, 1, 1, 2, 3])  # samples 1 and 2 share a subject: never paired
    available = torch.rand(b, m, generator=g) > 0.3
    available[:, 0] = True
    alpha_s, alpha_z = 0.3, 0.2
    got_s, got_z = similarity_margin_loss(fs, z, subject, available, alpha_s, alpha_z)
    want_s, want_z = loop_similarity(fs, z, subject, available, alpha_s, alpha_z)
    assert want_s > 0 and want_z > 0
    torch.testing.assert_close(got_s, want_s, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_z, want_z, rtol=1e-5, atol=1e-6)


def test_similarity_loss_zero_when_margins_met():
    # f(s): identical across modalities of a subject, orthogonal across subjects -> within 1, across 0.
    # z: identical across subjects for a modality, orthogonal across modalities.
    b, m = 3, 3
    fs = torch.zeros(b, m, b)
    z = torch.zeros(b, m, m)
    for p in range(b):
        fs[p, :, p] = 1.0
        for i in range(m):
            z[p, i, i] = 1.0
    loss_s, loss_z = similarity_margin_loss(fs, z, torch.arange(b), torch.ones(b, m, dtype=torch.bool), 0.5, 0.5)
    assert loss_s.item() == 0.0 and loss_z.item() == 0.0
    # Margin larger than the achievable gap (1) -> positive again.
    loss_s, loss_z = similarity_margin_loss(fs, z, torch.arange(b), torch.ones(b, m, dtype=torch.bool), 1.5, 1.5)
    assert loss_s.item() == pytest.approx(0.5) and loss_z.item() == pytest.approx(0.5)


def test_similarity_loss_gradient_finite_and_empty_set_zero():
    fs = torch.randn(4, 3, 8, requires_grad=True)
    z = torch.randn(4, 3, 5, requires_grad=True)
    available = torch.ones(4, 3, dtype=torch.bool)
    available[1, 2] = False
    with torch.no_grad():
        fs[1, 2] = 0.0  # a missing modality's zero vector must not produce NaN gradients
        z[1, 2] = 0.0
    loss_s, loss_z = similarity_margin_loss(fs, z, torch.arange(4), available, 0.1, 0.1)
    (loss_s + loss_z).backward()
    assert torch.isfinite(fs.grad).all() and torch.isfinite(z.grad).all()
    assert fs.grad.abs().sum() > 0 and z.grad.abs().sum() > 0
    # All samples from one subject: empty set -> exact zero that still backpropagates.
    fs2, z2 = torch.randn(3, 2, 4, requires_grad=True), torch.randn(3, 2, 4, requires_grad=True)
    loss_s, loss_z = similarity_margin_loss(fs2, z2, torch.zeros(3, dtype=torch.long), torch.ones(3, 2, dtype=torch.bool), 0.1, 0.1)
    assert loss_s.item() == 0.0 and loss_z.item() == 0.0
    (loss_s + loss_z).backward()
    assert fs2.grad is not None and torch.all(fs2.grad == 0)


def test_similarity_loss_rejects_bad_shapes():
    with pytest.raises(ValueError, match="subject"):
        similarity_margin_loss(torch.randn(3, 2, 4), torch.randn(3, 2, 4), torch.arange(4),
                               torch.ones(3, 2, dtype=torch.bool), 0.1, 0.1)
    with pytest.raises(ValueError, match="available"):
        similarity_margin_loss(torch.randn(3, 2, 4), torch.randn(3, 2, 4), torch.arange(3),
                               torch.ones(3, 3, dtype=torch.bool), 0.1, 0.1)


def test_fusion_ignores_unavailable_modalities_even_extreme_values():
    g = torch.Generator().manual_seed(0)
    s = torch.rand(3, 4, 2, 5, 5, generator=g)
    available = torch.tensor([[True, False, True, False], [False, False, False, True], [True, True, True, True]])
    fused = fuse_anatomy(s, available)
    assert fused.shape == (3, 6, 5, 5)
    for values in (1e6, -1e6, float("inf"), float("nan")):
        corrupted = s.clone()
        corrupted[~available] = values
        torch.testing.assert_close(fuse_anatomy(corrupted, available), fused)
    # Order: max, mean, min over available modalities.
    torch.testing.assert_close(fused[0, :2], torch.maximum(s[0, 0], s[0, 2]))
    torch.testing.assert_close(fused[0, 2:4], (s[0, 0] + s[0, 2]) / 2)
    torch.testing.assert_close(fused[0, 4:], torch.minimum(s[0, 0], s[0, 2]))
    torch.testing.assert_close(fused[1], torch.cat([s[1, 3]] * 3))
    with pytest.raises(ValueError, match="available"):
        fuse_anatomy(s, torch.zeros(3, 4, dtype=torch.bool))


def test_reconstruction_and_latent_terms_respect_availability():
    b, m = 2, 3
    images = torch.randn(b, m, 1, 4, 4)
    recon = images.unsqueeze(1).expand(b, m, m, 1, 4, 4).clone()  # perfect reconstructions
    available = torch.tensor([[True, True, False], [True, False, True]])
    pair_valid = available[:, :, None] & available[:, None, :]
    recon[~pair_valid] = 100.0  # garbage where a pair is not valid: must be ignored
    assert pair_l1(recon, images, pair_valid, cross=False).item() == 0.0
    assert pair_l1(recon, images, pair_valid, cross=True).item() == 0.0
    recon[0, 0, 1] += 1.0  # one valid cross pair off by 1 everywhere; 2 samples x 2 ordered pairs valid
    assert pair_l1(recon, images, pair_valid, cross=True).item() == pytest.approx(0.25)
    z = torch.randn(b, m, 4)
    z_tilde = z.unsqueeze(1).expand(b, m, m, 4).clone()
    z_tilde[~pair_valid] = -50.0
    assert latent_consistency(z_tilde, z, pair_valid).item() == 0.0
    assert masked_mean(torch.ones(3), torch.zeros(3, dtype=torch.bool)).item() == 0.0


def test_pair_l1_pixel_weight_exact_values():
    b, m = 1, 2
    images = torch.zeros(b, m, 1, 2, 2)
    recon = torch.zeros(b, m, m, 1, 2, 2)
    recon[0, 0, 0, 0, 0, 0] = 4.0  # self pair of modality 0: error 4 on pixel (0, 0) only
    pair_valid = torch.ones(b, m, m, dtype=torch.bool)
    assert pair_l1(recon, images, pair_valid, cross=False).item() == pytest.approx(0.5)  # (4 / 4 + 0) / 2
    weight = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])  # only pixel (0, 0) counts
    assert pair_l1(recon, images, pair_valid, cross=False, pixel_weight=weight).item() == pytest.approx(2.0)
    weight = torch.tensor([[[1.0, 0.1], [0.1, 0.1]]])  # brain (1) and background (0.1)
    assert pair_l1(recon, images, pair_valid, cross=False, pixel_weight=weight).item() == pytest.approx(4 / 1.3 / 2)
    ones = torch.ones(b, 2, 2)  # uniform weights = the plain mean
    assert pair_l1(recon, images, pair_valid, cross=False, pixel_weight=ones).item() == pytest.approx(0.5)

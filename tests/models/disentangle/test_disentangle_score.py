"""disentanglement_score: exact values on hand-made tensors, NaN cases, bounds, a well-disentangled
synthetic case scoring higher than an entangled one, and val/disentanglement from eval_step."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from raysys.models.disentangle import disentanglement_score
from raysys.models.disentangle.score import ReferenceBank

R2 = 1 / math.sqrt(2)


def test_exact_value_on_hand_made_tensors():
    # Two subjects, two modalities. f(s) identical across modalities within a subject and orthogonal
    # between subjects (anatomy invariance 1); z: modality 0 = [1, 0] everywhere, modality 1 = [0, 1]
    # for subject 0 but [1, 1] for subject 1.
    fs = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])
    z = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 1.0]]])
    subject = torch.tensor([0, 1])
    available = torch.ones(2, 2, dtype=torch.bool)
    score = disentanglement_score(fs, z, subject, available)
    across_z = (1 + R2) / 2  # mean of cos(z[p,0], z[q,0]) = 1 and cos(z[p,1], z[q,1]) = 1/sqrt2
    expected = torch.tensor([(1 + (across_z - 0.0)) / 2, (1 + (across_z - R2)) / 2])
    torch.testing.assert_close(score, expected)
    assert score.dtype == torch.float32 and score.shape == (2,)


def naive_score(fs, z, subject, available):
    """Loop version of the definition (the reference for the vectorised one)."""
    cos = lambda a, b: float(F.cosine_similarity(a, b, dim=0, eps=1e-12)) if a.norm() > 0 and b.norm() > 0 else 0.0
    out = []
    b, m = available.shape
    for p in range(b):
        mods = [i for i in range(m) if available[p, i]]
        pairs = [(i, j) for i, j in itertools.permutations(mods, 2)]
        across = [(q, i) for q in range(b) for i in mods if subject[q] != subject[p] and available[q, i]]
        if not pairs or not across:
            out.append(float("nan"))
            continue
        within_s = sum(cos(fs[p, i], fs[p, j]) for i, j in pairs) / len(pairs)
        within_z = sum(cos(z[p, i], z[p, j]) for i, j in pairs) / len(pairs)
        across_s = sum(cos(fs[p, i], fs[q, i]) for q, i in across) / len(across)
        across_z = sum(cos(z[p, i], z[q, i]) for q, i in across) / len(across)
        out.append(((within_s - across_s) + (across_z - within_z)) / 2)
    return torch.tensor(out)


def test_matches_the_loop_definition_with_missing_modalities_and_stays_in_bounds():
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        fs, z = torch.randn(6, 4, 5, generator=g), torch.randn(6, 4, 3, generator=g)
        subject = torch.tensor([0, 0, 1, 2, 2, 3])
        available = torch.rand(6, 4, generator=g) > 0.4
        score = disentanglement_score(fs, z, subject, available)
        torch.testing.assert_close(score, naive_score(fs, z, subject, available), equal_nan=True)
        finite = score[torch.isfinite(score)]
        assert finite.numel() > 0 and bool(((finite >= -2) & (finite <= 2)).all())


def test_nan_where_undefined():
    fs, z = torch.rand(3, 3, 4), torch.randn(3, 3, 2)
    available = torch.tensor([[True, False, False], [True, True, False], [True, True, True]])
    score = disentanglement_score(fs, z, torch.tensor([0, 1, 2]), available)
    assert math.isnan(score[0]) and torch.isfinite(score[1:]).all()  # one modality: no within pair
    same = disentanglement_score(fs, z, torch.tensor([5, 5, 5]), torch.ones(3, 3, dtype=torch.bool))
    assert torch.isnan(same).all()  # no other-subject sample
    # Other subjects that share no available modality with p: no across term.
    disjoint = torch.tensor([[True, True, False], [False, False, True], [False, False, True]])
    assert math.isnan(disentanglement_score(fs, z, torch.tensor([0, 1, 2]), disjoint)[0])


def test_reference_samples_supply_other_subjects():
    fs, z = torch.rand(2, 2, 4), torch.randn(2, 2, 3)
    available = torch.ones(2, 2, dtype=torch.bool)
    alone = disentanglement_score(fs, z, torch.tensor([0, 0]), available)
    assert torch.isnan(alone).all()
    ref = (torch.rand(3, 2, 4), torch.randn(3, 2, 3), torch.tensor([0, 1, 1]), torch.ones(3, 2, dtype=torch.bool))
    with_ref = disentanglement_score(fs, z, torch.tensor([0, 0]), available, reference=ref)
    # Equals the score of the batch joined with the reference, restricted to the batch's samples.
    joined = disentanglement_score(torch.cat([fs, ref[0]]), torch.cat([z, ref[1]]), torch.tensor([0, 0, 0, 1, 1]),
                                   torch.cat([available, ref[3]]))
    torch.testing.assert_close(with_ref, joined[:2])
    same_subject_ref = (ref[0], ref[1], torch.tensor([0, 0, 0]), ref[3])
    assert torch.isnan(disentanglement_score(fs, z, torch.tensor([0, 0]), available, reference=same_subject_ref)).all()


def synthetic(entangled: bool, subjects: int = 6, m: int = 4, noise: float = 0.05, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    anatomy = torch.rand(subjects, 32, generator=g)  # per-subject anatomy (non-negative like pooled softmax)
    style = torch.randn(m, 8, generator=g)  # per-modality appearance
    if entangled:  # anatomy carries the modality, z carries the subject
        fs = torch.rand(m, 32, generator=g)[None].expand(subjects, m, 32).clone()
        z = torch.randn(subjects, 8, generator=g)[:, None].expand(subjects, m, 8).clone()
    else:
        fs = anatomy[:, None].expand(subjects, m, 32).clone()
        z = style[None].expand(subjects, m, 8).clone()
    fs = (fs + noise * torch.rand(fs.shape, generator=g)).clamp(min=0)
    z = z + noise * torch.randn(z.shape, generator=g)
    return fs, z, torch.arange(subjects), torch.ones(subjects, m, dtype=torch.bool)


def test_well_disentangled_scores_higher_than_entangled():
    good = disentanglement_score(*synthetic(entangled=False))
    bad = disentanglement_score(*synthetic(entangled=True))
    assert torch.isfinite(good).all() and torch.isfinite(bad).all()
    assert good.mean() > 0.3 > 0.0 > bad.mean(), (good.mean(), bad.mean())
    assert bool((good.min() > bad.max()))


def test_reference_bank_keeps_recent_samples_per_subject():
    bank = ReferenceBank(per_subject=2, max_subjects=2)
    assert bank.tensors() is None
    for sid in (0, 0, 0, 1, 2):
        bank.add(torch.full((1, 2, 3), float(sid)), torch.zeros(1, 2, 4), torch.tensor([sid]), torch.ones(1, 2, dtype=torch.bool))
    fs, z, subject, available = bank.tensors()
    assert subject.tolist() == [1, 2] and fs.shape == (2, 2, 3) and z.shape == (2, 2, 4) and available.all()
    bank.clear()
    assert len(bank) == 0


def test_eval_step_logs_disentanglement_with_references_across_batches():
    from raysys.models import build_family

    torch.manual_seed(0)
    family = build_family("disentangle", "tiny")
    assert "disentanglement" in type(family).metric_names and "disentanglement" in family.metric_names

    def batch(subject: int):
        return {"images": torch.randn(2, 4, 3, 64, 64), "available": torch.ones(2, 4, dtype=torch.bool),
                "mask": torch.ones(2, 64, 64, dtype=torch.bool), "subject": torch.tensor([subject, subject])}

    first = family.eval_step(batch(0))["disentanglement"]
    assert first.shape == (2,) and torch.isnan(first).all()  # one subject, nothing earlier to compare with
    second = family.eval_step(batch(1))["disentanglement"]
    assert torch.isfinite(second).all() and bool(((second >= -2) & (second <= 2)).all())
    family.on_epoch_end(0, {})  # a new validation pass forgets the references
    assert torch.isnan(family.eval_step(batch(2))["disentanglement"]).all()

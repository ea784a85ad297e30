"""Contrast model and anatomy of the phantom images.

Orderings are medians per tissue class of the tissue map (tumour voxels excluded), so partial
volume, site gain/gamma, bias fields and noise must all leave the clinical orderings intact.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from data_prep.phantom import ALL_MODALITIES, generate_cohort

CSF, GM, WM = 1, 2, 3
NCR, ED, ET = 1, 2, 4


@pytest.fixture(scope="module")
def full_cohort(tmp_path_factory):
    """3 tumour subjects with all six modalities always available."""
    out = tmp_path_factory.mktemp("phantom_full")
    generate_cohort(out, subjects=3, seed=7, resolution=2, modalities=ALL_MODALITIES,
                    tumour_fraction=1.0, missing={m: 1.0 for m in ALL_MODALITIES}, workers=2)
    return out


def _load(root, subject, modality):
    path = root / subject / f"{subject}_{modality}.nii.gz"
    return np.asarray(nib.load(path).dataobj) if path.exists() else None


def _tissue_medians(image, tissue, seg, region=None):
    region = np.ones(image.shape, bool) if region is None else region
    return [float(np.median(image[(tissue == k) & (seg == 0) & region])) for k in (CSF, GM, WM)]


def test_mr_contrast_orderings(phantom_dir):
    checked = 0
    for subject in sorted(p.name for p in phantom_dir.glob("sub-*")):
        tissue, seg = _load(phantom_dir, subject, "tissue"), _load(phantom_dir, subject, "seg")
        for modality, (order_high_to_low) in {"t1": (WM, GM, CSF), "t1gd": (WM, GM, CSF),
                                              "t2": (CSF, GM, WM), "flair": (GM, WM, CSF)}.items():
            image = _load(phantom_dir, subject, modality)
            if image is None:
                continue
            medians = dict(zip((CSF, GM, WM), _tissue_medians(image, tissue, seg)))
            values = [medians[k] for k in order_high_to_low]
            assert values[0] > values[1] > values[2], f"{subject} {modality}: medians {medians}"
            checked += 1
    assert checked >= 16


def test_lesion_contrasts(full_cohort):
    for subject in ("sub-000", "sub-001", "sub-002"):
        tissue, seg = _load(full_cohort, subject, "tissue"), _load(full_cohort, subject, "seg")
        wm = (tissue == WM) & (seg == 0)
        images = {m: _load(full_cohort, subject, m) for m in ("t1", "t1gd", "t2", "flair", "pet")}
        median = {m: {k: float(np.median(im[seg == k])) for k in (NCR, ED, ET)} | {"wm": float(np.median(im[wm]))}
                  for m, im in images.items()}
        # Oedema hyperintense on FLAIR and T2 relative to white matter.
        assert median["flair"][ED] > 1.5 * median["flair"]["wm"], subject
        assert median["t2"][ED] > 1.5 * median["t2"]["wm"], subject
        # The enhancing rim enhances: its contrast to WM rises from T1 to T1Gd.
        et_t1 = median["t1"][ET] / median["t1"]["wm"]
        et_t1gd = median["t1gd"][ET] / median["t1gd"]["wm"]
        assert et_t1gd > 1.1 > 0.9 > et_t1, (subject, et_t1, et_t1gd)
        # Necrosis dark on T1Gd; FDG: the rim is hot, above grey matter (a small necrotic core
        # is blurred away by the 6 mm point-spread function, as in real PET).
        assert median["t1gd"][NCR] < median["t1gd"][ET]
        gm = (tissue == GM) & (seg == 0)
        assert median["pet"][ET] > float(np.median(images["pet"][gm])) > median["pet"]["wm"], subject


def test_pet_and_ultrasound(full_cohort):
    for subject in ("sub-000", "sub-001", "sub-002"):
        tissue, seg = _load(full_cohort, subject, "tissue"), _load(full_cohort, subject, "seg")
        csf, gm, wm = _tissue_medians(_load(full_cohort, subject, "pet"), tissue, seg)
        assert gm > wm > csf, subject
        us = _load(full_cohort, subject, "us")
        field_of_view = us > 0
        assert 0.02 < field_of_view.mean() < 0.5, "ultrasound should see a fan, not the whole volume"
        assert not field_of_view[tissue == 0].any()
        lesion_core = (seg == NCR) | (seg == ET)
        assert field_of_view[lesion_core].mean() > 0.8, "the probe is aimed at the tumour"
        csf, gm, wm = _tissue_medians(us, tissue, seg, region=field_of_view)
        assert wm > csf, subject  # anechoic fluid
        # Depth attenuation: deep half of the fan darker than the shallow half.
        z = np.nonzero(field_of_view)[2]
        values = us[field_of_view]
        assert np.median(values[z > np.median(z)]) > np.median(values[z < np.median(z)])


def _edges(image):
    return ndimage.gaussian_gradient_magnitude(image.astype(np.float32), sigma=1.0)


def test_subjects_differ_more_than_a_subjects_modalities(full_cohort):
    """The disentanglement premise: anatomy is shared within a subject, differs between subjects."""
    subjects = ("sub-000", "sub-001", "sub-002")
    tissue = {s: _load(full_cohort, s, "tissue") for s in subjects}
    brain = np.logical_or.reduce([t > 0 for t in tissue.values()])
    edges = {(s, m): _edges(_load(full_cohort, s, m)) for s in subjects for m in ("t1", "t2", "flair")}

    def corr(a, b):
        return float(np.corrcoef(a[brain], b[brain])[0, 1])

    within = [corr(edges[s, "t1"], edges[s, m]) for s in subjects for m in ("t2", "flair")]
    between = [corr(edges[a, m], edges[b, m]) for i, a in enumerate(subjects) for b in subjects[i + 1:]
               for m in ("t1", "t2")]
    assert min(within) > 0.7, within
    assert max(between) < min(within) - 0.2, (within, between)

    for i, a in enumerate(subjects):
        for b in subjects[i + 1:]:
            dice = [2 * ((tissue[a] == k) & (tissue[b] == k)).sum() / ((tissue[a] == k).sum() + (tissue[b] == k).sum())
                    for k in (CSF, GM, WM)]
            assert max(dice) < 0.9, (a, b, dice)  # within a subject all modalities share one map: Dice 1

"""Without a tissue map: the brain mask (Otsu) and white matter (k-means) are estimated well enough."""

from __future__ import annotations

import numpy as np
from convert_helpers import image, tissue_map, write_subject

from data_prep.convert import convert
from data_prep.convert.geometry import brain_mask
from data_prep.convert.normalise import white_matter_masks
from raysys.data import open_store


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_estimated_mask_and_white_matter_match_the_truth():
    tissue = tissue_map(4)
    images = {m: image(tissue, m, 4) for m in ("t1", "t2", "flair")}
    mask = brain_mask(images, tissue=None)
    assert dice(mask, tissue > 0) > 0.95
    white, source = white_matter_masks(images, mask, tissue=None)
    assert source == "t1" and dice(white["t2"], tissue == 3) > 0.85
    white, source = white_matter_masks({m: images[m] for m in ("t2", "flair")}, mask, tissue=None)
    assert source == "per-modality"
    assert dice(white["t2"], tissue == 3) > 0.85 and dice(white["flair"], tissue == 3) > 0.85


def test_wm_median_without_tissue_map(tmp_path):
    for i in range(2):
        write_subject(tmp_path / "in", f"n{i}", seed=i, tissue=False)
    truth = tissue_map(0)
    url = str(tmp_path / "s.zarr")
    convert(str(tmp_path / "in"), url, size=(48, 40), normalise="wm-median", folds=3, progress=False)
    store = open_store(url)
    assert store.attrs["subject_normalisation"]["n0"]["white_matter_from"] == "t1"
    start, stop = store.slice_range("n0")
    z = store.slice_z[start:stop]
    white = np.transpose(truth == 3, (2, 1, 0))[:, ::-1, :][z]
    for modality, target in (("t2", 1 / 7), ("flair", 1 / 3)):
        assert abs(np.median(store.volume("n0", modality)[white]) - target) < 0.03, modality

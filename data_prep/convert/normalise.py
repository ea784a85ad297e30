"""Intensity normalisation inside the brain mask, computed on the whole 3-D volume.

Every method sets voxels outside the mask to 0 and returns the statistics it applied, which
the store records per subject and modality.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

METHODS = ("zscore", "wm-median", "minmax")

VALUE_RANGES: dict[str, tuple[float, float]] = {
    "zscore": (-5.0, 5.0),
    "wm-median": (0.0, 1.0),
    "minmax": (0.0, 1.0),
}
"""Fixed value range of each method (values are clipped to it; metrics use it as data range)."""

WM_MEDIAN_TARGET: dict[str, float] = {"t2": 1 / 7, "t1gd": 1 / 5, "flair": 1 / 3, "t1": 1 / 3,
                                      "us": 1 / 3, "pet": 1 / 3}
"""White-matter median after ``wm-median`` (MMHVAE paper, data harmonisation: T2 1/7, ceT1 1/5,
FLAIR 1/3). T1, US and PET are not in the paper: ours, 1/3."""

WM_CLASS_RANK: dict[str, int] = {"t1": 2, "t1gd": 2, "t2": 0, "flair": 1}
"""Without a tissue map, WM is estimated as one of 3 intensity classes (k-means in the brain):
0 darkest, 1 middle, 2 brightest. T1/T1gd are used first (WM brightest) for all modalities."""

MINMAX_PERCENTILES = (0.5, 99.5)

RAW = "raw"
RAW_PERCENTILE = 99.0
RAW_RANGE: tuple[float, float] = (0.0, 2.0)
"""``--keep-raw``: the raw images are divided by their volume's 99th percentile inside the brain and
clipped to [0, 2]. Scanner units are arbitrary (0..4095, 0..1e6 ...), so a model input needs some
fixed scale; one factor per volume, with no offset and nothing fitted to tissue classes, keeps
the contrast differences between scanners and sites that the store's normalisation (above all
``wm-median``, the MMHVAE paper's harmonisation) removes, so raw -> normalised stays a real
harmonisation task. The 99th percentile ignores the brightest 1 % (vessels, artefacts); the
clip at 2 keeps the hyperintense tail (enhancing tumour) unclipped yet bounds outliers."""


def zscore(volume: np.ndarray, mask: np.ndarray) -> tuple[float, float, dict]:
    """(x - mean) / std over the mask, later clipped to [-5, 5] (disentanglement paper: brain z-scores)."""
    values = inside(volume, mask)
    mean, std = float(values.mean()), float(values.std())
    if std == 0:
        raise ValueError("constant intensity inside the brain mask")
    return mean, 1.0 / std, {"mean": mean, "std": std}


def minmax(volume: np.ndarray, mask: np.ndarray) -> tuple[float, float, dict]:
    """Linear map of the 0.5th..99.5th percentile in the mask to [0, 1], later clipped."""
    low, high = (float(v) for v in np.percentile(inside(volume, mask), MINMAX_PERCENTILES))
    if high <= low:
        raise ValueError("constant intensity inside the brain mask")
    return low, 1.0 / (high - low), {"low": low, "high": high}


def wm_median(volume: np.ndarray, mask: np.ndarray, white_matter: np.ndarray, modality: str
              ) -> tuple[float, float, dict]:
    """MMHVAE harmonisation: brain minimum -> 0, white-matter median -> ``WM_MEDIAN_TARGET``; clip [0, 1]."""
    brain = inside(volume, mask)
    minimum = float(brain.min())
    median = float(np.median(inside(volume, white_matter))) if np.any(white_matter) else float(np.median(brain))
    if median <= minimum:
        raise ValueError("white-matter median is not above the brain minimum")
    target = WM_MEDIAN_TARGET.get(modality, 1 / 3)
    return minimum, target / (median - minimum), {"min": minimum, "wm_median": median, "target": target}


def raw_scale(volume: np.ndarray, mask: np.ndarray) -> tuple[float, float, dict]:
    """``--keep-raw``'s per-volume scaling (``RAW_RANGE``): x / p99 of the brain, no offset."""
    p99 = float(np.percentile(inside(volume, mask), RAW_PERCENTILE))
    if p99 <= 0:
        raise ValueError(f"the brain's {RAW_PERCENTILE:g}th intensity percentile is {p99:g}, not > 0")
    return 0.0, 1.0 / p99, {"p99": p99}


def apply(values: np.ndarray, mask: np.ndarray, offset: float, scale: float, method: str) -> np.ndarray:
    """Every method is linear: clip((x - offset) * scale) to its value range inside the mask, 0 outside
    (``method`` = ``RAW``: the raw images' scaling, clipped to ``RAW_RANGE``).

    A new float32 array in the memory layout of ``values`` (nibabel's Fortran order stays so),
    computed in place: one temporary, no copies in another order.
    """
    low, high = RAW_RANGE if method == RAW else VALUE_RANGES[method]
    out = np.subtract(values, np.float32(offset), dtype=np.float32)
    out *= np.float32(scale)
    np.clip(out, low, high, out=out)
    np.copyto(out, np.float32(0), where=~mask)      # not ``*= mask``: that leaves -0.0 behind
    return out


def inside(volume: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``volume[mask]`` in Fortran (x fastest) order whatever the memory layout, so the float sums
    over it (mean, std) round the same for every orientation on disk. Boolean indexing walks C
    order, so it indexes the transposes: for the loader's Fortran-ordered volumes that reads
    memory sequentially."""
    return volume.T[mask.T]


def _intensity_classes(volume: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """3-class k-means of the brain intensities -> class rank per brain voxel (0 darkest .. 2 brightest)."""
    inside = volume[mask].astype(np.float64)
    sample = inside[:: max(1, inside.size // 20000)].reshape(-1, 1)
    model = KMeans(n_clusters=3, n_init=1, random_state=0).fit(sample)
    order = np.argsort(model.cluster_centers_.ravel())
    rank_of_cluster = np.empty(3, dtype=int)
    rank_of_cluster[order] = np.arange(3)
    return rank_of_cluster[model.predict(inside.reshape(-1, 1))]


def white_matter_masks(images: dict[str, np.ndarray], mask: np.ndarray, tissue: np.ndarray | None
                       ) -> tuple[dict[str, np.ndarray], str]:
    """WM mask per modality [X, Y, Z] and where it came from ("tissue", "t1", "t1gd", "per-modality")."""
    if tissue is not None:
        white = tissue == 3
        return {m: white for m in images}, "tissue"
    for anchor in ("t1", "t1gd"):
        if anchor in images:
            white = np.zeros_like(mask)
            white[mask] = _intensity_classes(images[anchor], mask) == 2
            return {m: white for m in images}, anchor
    masks = {}
    for modality, volume in images.items():
        white = np.zeros_like(mask)
        if modality in WM_CLASS_RANK:
            white[mask] = _intensity_classes(volume, mask) == WM_CLASS_RANK[modality]
        masks[modality] = white  # empty -> the brain median is used (US, PET)
    return masks, "per-modality"


def fit_subject(images: dict[str, np.ndarray], mask: np.ndarray, tissue: np.ndarray | None, method: str
                ) -> tuple[dict[str, tuple[float, float]], dict]:
    """Fit the normalisation of every image of one subject on the whole 3-D volume.

    Returns ({modality: (offset, scale)} for ``apply``, {modality: statistics, ...} to record).
    """
    if method not in METHODS:
        raise ValueError(f"normalise={method!r}: expected one of {METHODS}")
    params, stats = {}, {}
    if method == "wm-median":
        white, stats["white_matter_from"] = white_matter_masks(images, mask, tissue)
    for modality, volume in images.items():
        if method == "wm-median":
            offset, scale, stats[modality] = wm_median(volume, mask, white[modality], modality)
        else:
            offset, scale, stats[modality] = (zscore if method == "zscore" else minmax)(volume, mask)
        params[modality] = (offset, scale)
    return params, stats

"""Small synthetic NIfTI cohorts for the converter tests, and an independent reference pipeline.

A subject is an ellipsoid "brain" (tissue 1 CSF core, 2 GM shell, 3 WM) in a 40x48x30 grid at
2 mm; each modality is a different tissue contrast plus noise. ``expected_zscore`` recomputes
what the store must contain with plain numpy, without the converter's code.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

SHAPE = (40, 48, 30)
AFFINE = np.array([[2.0, 0, 0, -40], [0, 2.0, 0, -50], [0, 0, 2.0, -30], [0, 0, 0, 1]])
CONTRAST = {"t1": (0.3, 0.6, 1.0), "t2": (1.0, 0.6, 0.4), "flair": (0.2, 0.8, 0.5)}


def tissue_map(seed: int) -> np.ndarray:
    """uint8 [X, Y, Z]: 0 background, 1 CSF, 2 GM, 3 WM (size varies a little with the seed)."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in SHAPE], indexing="ij")
    scale = 0.8 + 0.1 * rng.random()
    radius = np.sqrt((x / 0.8) ** 2 + (y / 0.85) ** 2 + (z / 0.75) ** 2) / scale
    tissue = np.zeros(SHAPE, dtype=np.uint8)
    tissue[radius < 1.0] = 2
    tissue[radius < 0.8] = 3
    tissue[radius < 0.25] = 1
    return tissue


def image(tissue: np.ndarray, modality: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1000 * len(modality))
    values = np.array((0.0, *CONTRAST[modality]), dtype=np.float32) * 800
    return (values[tissue] + (tissue > 0) * rng.normal(0, 20, tissue.shape)).astype(np.float32)


def save(data: np.ndarray, path: Path, affine: np.ndarray = AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def write_subject(root: Path, subject: str, seed: int, modalities=("t1", "t2", "flair"), tissue: bool = True,
                  names: dict[str, str] | None = None) -> dict[str, Path]:
    """Write one subject's files as ``root/<subject>/<subject>_<name>.nii.gz``; returns {modality: path}."""
    names = names or {}
    tissue_data = tissue_map(seed)
    paths = {}
    for modality in modalities:
        paths[modality] = save(image(tissue_data, modality, seed),
                               root / subject / f"{subject}_{names.get(modality, modality)}.nii.gz")
    if tissue:
        paths["tissue"] = save(tissue_data, root / subject / f"{subject}_tissue.nii.gz")
    return paths


def to_las(path: Path, out: Path) -> Path:
    """The same volume stored left-right flipped with an affine that keeps world coordinates."""
    img = nib.load(str(path))
    data = np.asarray(img.dataobj)[::-1]
    affine = img.affine.copy()
    affine[:3, 3] = img.affine[:3, :3] @ np.array([data.shape[0] - 1, 0, 0]) + img.affine[:3, 3]
    affine[:3, 0] = -img.affine[:3, 0]
    return save(np.ascontiguousarray(data), out, affine)


def expected_zscore(paths: dict[str, Path]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Reference for size == native in-plane (48, 40): (z kept, {modality: [Z, 48, 40]}) from numpy alone."""
    tissue = np.asarray(nib.load(str(paths["tissue"])).dataobj)
    mask = tissue > 0
    area = mask.sum(axis=(0, 1))
    kept = np.flatnonzero(area >= 0.1 * area.max())
    z = np.arange(kept[0], kept[-1] + 1)
    out = {}
    for modality, path in paths.items():
        if modality == "tissue":
            continue
        data = np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)
        mean, std = data[mask].mean(), data[mask].std()
        normalised = np.where(mask, np.clip((data - mean) / std, -5, 5), 0)
        # RAS [X, Y, Z] -> [Z, H = -Y, W = X]
        out[modality] = np.transpose(normalised, (2, 1, 0))[:, ::-1, :][z]
    return z, out

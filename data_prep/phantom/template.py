"""The real MNI152 2009 template packaged with nilearn, as float32 arrays (no downloads).

Coordinates in this package are "grid millimetres": voxel index times the voxel size, so a
point p (3,) in grid mm lies at voxel p / spacing_mm. The template's voxel axes are RAS
(the affine is diagonal and positive), so grid mm differ from MNI mm only by an offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

RESOLUTIONS = (1, 2)


@dataclass(frozen=True, eq=False)  # eq=False: hashed by identity, so per-template caches work
class Template:
    """MNI152 maps on one grid. Volumes are float32 [X, Y, Z]; CSF = mask - GM - WM >= 0."""

    resolution: int
    affine: np.ndarray          # (4, 4) voxel -> MNI mm, shared by every output volume
    texture: np.ndarray         # T1 detail not explained by the tissue fractions (see t1_texture)
    gm: np.ndarray              # grey-matter probability
    wm: np.ndarray              # white-matter probability
    csf: np.ndarray             # cerebrospinal-fluid fraction
    mask: np.ndarray            # brain mask as 0/1 float (partial volume appears after warping)
    brain_centre_mm: np.ndarray      # (3,) centroid of the mask, grid mm
    ventricle_centre_mm: np.ndarray  # (3,) centroid of the deep (lateral ventricle) CSF, grid mm

    @property
    def spacing_mm(self) -> float:
        return float(self.resolution)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.mask.shape)  # type: ignore[return-value]


@lru_cache(maxsize=2)
def load_template(resolution: int = 2) -> Template:
    """Load the nilearn MNI152 2009 T1, GM, WM and brain mask at 1 or 2 mm (cached per process)."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {RESOLUTIONS} (mm), got {resolution!r}")
    from nilearn import datasets  # imported lazily: nilearn is slow to import and only needed here

    images = {
        "t1": datasets.load_mni152_template(resolution=resolution),
        "gm": datasets.load_mni152_gm_template(resolution=resolution),
        "wm": datasets.load_mni152_wm_template(resolution=resolution),
        "mask": datasets.load_mni152_brain_mask(resolution=resolution),
    }
    affine = np.asarray(images["mask"].affine, dtype=np.float64)
    if not np.allclose(affine[:3, :3], np.diag([resolution] * 3)):
        raise RuntimeError(f"unexpected MNI152 template affine from nilearn:\n{affine}")
    arrays = {k: np.asarray(img.get_fdata(), dtype=np.float32) for k, img in images.items()}
    mask = (arrays["mask"] > 0.5).astype(np.float32)
    gm = np.clip(arrays["gm"], 0, 1) * mask
    wm = np.clip(arrays["wm"], 0, 1) * mask
    csf = np.clip(mask - gm - wm, 0, 1)
    t1 = np.clip(arrays["t1"], 0, 1) * mask
    return Template(
        resolution=resolution,
        affine=affine,
        texture=t1_texture(t1, csf, gm, wm, mask > 0.5),
        gm=gm,
        wm=wm,
        csf=csf,
        mask=mask,
        brain_centre_mm=_centroid_mm(mask, resolution),
        ventricle_centre_mm=_ventricle_centre_mm(csf, mask, resolution),
    )


def _centroid_mm(weights: np.ndarray, spacing: float) -> np.ndarray:
    idx = np.indices(weights.shape, dtype=np.float64).reshape(3, -1)
    w = weights.reshape(-1).astype(np.float64)
    return (idx @ w) / w.sum() * spacing


def _ventricle_centre_mm(csf: np.ndarray, mask: np.ndarray, spacing: float) -> np.ndarray:
    """Centroid of CSF-dominated voxels within 30 mm of the brain centre: the lateral ventricles."""
    centre = _centroid_mm(mask, spacing)
    grid = np.indices(csf.shape, dtype=np.float32) * spacing
    distance = np.sqrt(sum((grid[a] - centre[a]) ** 2 for a in range(3)))
    deep_csf = ((csf > 0.5) & (distance < 30.0)).astype(np.float32)
    return _centroid_mm(deep_csf, spacing)


def t1_texture(t1: np.ndarray, csf: np.ndarray, gm: np.ndarray, wm: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Template T1 detail the tissue fractions do not explain (deep grey nuclei, fine gyri),
    in units of the T1 WM-CSF contrast, so every modality can carry it with its own contrast.

    Least-squares fit t1 ~ a*csf + b*gm + c*wm inside the brain; the residual is the texture.
    """
    design = np.stack([csf[brain], gm[brain], wm[brain]], axis=1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, t1[brain].astype(np.float64), rcond=None)
    residual = np.zeros(t1.shape, dtype=np.float32)
    residual[brain] = t1[brain] - design @ coef
    return residual / np.float32(max(coef[2] - coef[0], 1e-3))

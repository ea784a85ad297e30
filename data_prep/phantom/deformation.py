"""Per-subject anatomy: a backward map from the subject's grid to the template.

A subject voxel at grid-mm position x takes its tissue from the template at
    source(x) = V(S(A(M(x))))
where M is the tumour mass effect (radial push away from the lesion), A a small random affine
about the brain centre, S a smooth random displacement of a few mm and V a radial warp
around the lateral ventricles that enlarges or shrinks them. All are vectorised over points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .template import Template

SMOOTH_GRID_MM = 6.0            # control-point spacing of the smooth displacement
SMOOTH_CORRELATION_MM = 12.0    # Gaussian smoothing of the control-point noise
SMOOTH_STD_MM = (1.0, 2.5)      # per-subject range of the displacement's std ("a few mm")
MAX_ROTATION_DEG = 3.0
MAX_LOG_SCALE = 0.06            # per-axis brain size variation, about +-6 %
MAX_SHIFT_MM = 3.0
VENTRICLE_SIGMA_MM = (20.0, 30.0, 18.0)  # extent of the ventricle warp (x, y, z)
VENTRICLE_STRENGTH = (-0.3, 0.55)        # < 0 shrinks, > 0 enlarges the ventricles (|.| < 0.6: no folding)


@dataclass(frozen=True)
class MassEffect:
    """Radial push of tissue away from a lesion centre (grid mm)."""

    centre_mm: np.ndarray   # (3,)
    sigma_mm: float
    strength: float         # in [0, 0.6): fraction of the radius the tissue is moved near the centre


@dataclass(frozen=True)
class Deformation:
    brain_centre_mm: np.ndarray    # (3,) centre of the affine
    linear: np.ndarray             # (3, 3) rotation @ scaling
    shift_mm: np.ndarray           # (3,)
    smooth_mm: np.ndarray          # (3, a, b, c) displacement at control points SMOOTH_GRID_MM apart
    ventricle_centre_mm: np.ndarray
    ventricle_strength: float
    mass_effect: MassEffect | None


def sample_deformation(rng: np.random.Generator, template: Template,
                       mass_effect: MassEffect | None = None) -> Deformation:
    """Draw one subject's deformation parameters (the order of draws is fixed: determinism)."""
    angles = np.deg2rad(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG, size=3))
    scales = np.exp(rng.uniform(-MAX_LOG_SCALE, MAX_LOG_SCALE, size=3))
    shift = rng.uniform(-MAX_SHIFT_MM, MAX_SHIFT_MM, size=3)
    extent_mm = np.asarray(template.shape) * template.spacing_mm
    control_shape = tuple(int(np.ceil(e / SMOOTH_GRID_MM)) + 1 for e in extent_mm)
    sigma_cells = SMOOTH_CORRELATION_MM / SMOOTH_GRID_MM
    noise = ndimage.gaussian_filter(rng.standard_normal((3, *control_shape)), sigma=(0, *[sigma_cells] * 3))
    noise /= noise.std(axis=(1, 2, 3), keepdims=True)
    smooth = noise * rng.uniform(*SMOOTH_STD_MM)
    return Deformation(
        brain_centre_mm=template.brain_centre_mm,
        linear=_rotation(angles) @ np.diag(scales),
        shift_mm=shift,
        smooth_mm=smooth.astype(np.float32),
        ventricle_centre_mm=template.ventricle_centre_mm,
        ventricle_strength=float(rng.uniform(*VENTRICLE_STRENGTH)),
        mass_effect=mass_effect,
    )


def source_points(deformation: Deformation, points_mm: np.ndarray) -> np.ndarray:
    """Map subject points (3, N) in grid mm to template points (3, N) in grid mm."""
    p = points_mm.astype(np.float64)
    if deformation.mass_effect is not None:
        m = deformation.mass_effect
        p = _radial_warp(p, m.centre_mm, np.full(3, m.sigma_mm), m.strength)
    c = deformation.brain_centre_mm[:, None]
    p = deformation.linear @ (p - c) + c + deformation.shift_mm[:, None]
    control = p / SMOOTH_GRID_MM
    # Linear interpolation suffices: the control grid is much finer than the field's correlation length.
    p = p + np.stack([ndimage.map_coordinates(deformation.smooth_mm[a], control, order=1, mode="nearest")
                      for a in range(3)])
    return _radial_warp(p, deformation.ventricle_centre_mm, np.asarray(VENTRICLE_SIGMA_MM),
                        deformation.ventricle_strength)


def subject_grid_mm(template: Template) -> np.ndarray:
    """All voxel centres of the subject grid (= template grid) as (3, N) grid mm."""
    return (np.indices(template.shape, dtype=np.float32).reshape(3, -1) * template.spacing_mm)


def warp(volume: np.ndarray, source_mm: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Trilinear resampling of a template volume at template points (3, N); zero outside."""
    values = ndimage.map_coordinates(volume, source_mm / spacing_mm, order=1, mode="constant", cval=0.0)
    return values.astype(np.float32)


def _radial_warp(p: np.ndarray, centre: np.ndarray, sigma: np.ndarray, strength: float) -> np.ndarray:
    """source = c + (p - c) * (1 - strength * g): strength > 0 expands what lies around c.

    g is an anisotropic Gaussian of the distance to c; the map stays monotonic for |strength| < 0.6.
    """
    offset = p - centre[:, None]
    g = np.exp(-0.5 * np.sum((offset / sigma[:, None]) ** 2, axis=0))
    return centre[:, None] + offset * (1.0 - strength * g)


def _rotation(angles: np.ndarray) -> np.ndarray:
    ax, ay, az = angles
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx

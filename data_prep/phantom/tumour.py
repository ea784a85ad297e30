"""Irregular brain tumours with BraTS labels: 1 = necrotic core (NCR), 2 = oedema (ED), 4 = enhancing rim (ET).

The lesion is a level set of a noisy "radius" field rho = ellipsoidal distance / R * (1 + noise):
rho < core -> NCR, core <= rho < 1 -> ET, 1 <= rho < oedema extent -> ED (only where there is
white matter, which oedema follows, or close to the lesion). Everything stays inside the brain.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from .deformation import MassEffect
from .template import Template

NCR, ED, ET = 1, 2, 4
RADIUS_MM = (9.0, 18.0)        # radius of the enhancing lesion (NCR + ET)
CORE_FRACTION = (0.45, 0.7)    # NCR radius relative to the lesion radius
OEDEMA_EXTENT = (1.5, 2.1)     # oedema reach relative to the lesion radius
SHAPE_NOISE = 0.3              # relative radius irregularity
BRAIN_MARGIN_MM = 6.0          # lesion centre at least radius + margin from the brain surface


@dataclass(frozen=True)
class TumourSpec:
    centre_mm: np.ndarray     # (3,) grid mm, in the subject's space
    radius_mm: float
    axes: np.ndarray          # (3,) relative ellipsoid semi-axes
    core_fraction: float
    oedema_extent: float
    mass_strength: float

    def mass_effect(self) -> MassEffect:
        return MassEffect(centre_mm=self.centre_mm, sigma_mm=1.3 * self.radius_mm, strength=self.mass_strength)


def sample_tumour(rng: np.random.Generator, template: Template) -> TumourSpec:
    """Place a lesion in deep hemispheric white matter of the template (a few mm from the subject's)."""
    radius = float(rng.uniform(*RADIUS_MM))
    wm_depth_mm = _hemispheric_wm_depth_mm(template)
    candidates = np.flatnonzero(wm_depth_mm > radius + BRAIN_MARGIN_MM)
    voxel = np.array(np.unravel_index(rng.choice(candidates), template.shape), dtype=np.float64)
    return TumourSpec(
        centre_mm=voxel * template.spacing_mm,
        radius_mm=radius,
        axes=rng.uniform(0.8, 1.25, size=3),
        core_fraction=float(rng.uniform(*CORE_FRACTION)),
        oedema_extent=float(rng.uniform(*OEDEMA_EXTENT)),
        mass_strength=float(rng.uniform(0.25, 0.45)),
    )


@lru_cache(maxsize=2)
def _hemispheric_wm_depth_mm(template: Template) -> np.ndarray:
    """Distance to the brain surface (mm) at white-matter voxels >= 12 mm off the midline, else 0."""
    spacing = template.spacing_mm
    depth_mm = ndimage.distance_transform_edt(template.mask > 0.5, sampling=spacing)
    x_mm = np.arange(template.shape[0])[:, None, None] * spacing
    off_midline = np.abs(x_mm - template.brain_centre_mm[0]) > 12.0
    return np.where((template.wm > 0.6) & off_midline, depth_mm, 0.0).astype(np.float32)


def tumour_labels(rng: np.random.Generator, spec: TumourSpec, wm: np.ndarray, brain: np.ndarray,
                  spacing_mm: float) -> np.ndarray:
    """Label volume uint8 [X, Y, Z] for the subject's (deformed) white matter and brain mask (bool)."""
    labels = np.zeros(brain.shape, dtype=np.uint8)
    reach_mm = spec.radius_mm * spec.oedema_extent * float(spec.axes.max()) * (1 + 3 * SHAPE_NOISE)
    centre_vox = spec.centre_mm / spacing_mm
    lo = np.maximum(np.floor(centre_vox - reach_mm / spacing_mm).astype(int), 0)
    hi = np.minimum(np.ceil(centre_vox + reach_mm / spacing_mm).astype(int) + 1, brain.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    shape = tuple(hi - lo)

    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=0.35 * spec.radius_mm / spacing_mm)
    noise /= max(float(noise.std()), 1e-6)
    noise = np.clip(noise, -2.5, 2.5)
    grid = (np.indices(shape, dtype=np.float64) + lo[:, None, None, None]) * spacing_mm
    offset = grid - spec.centre_mm[:, None, None, None]
    ellipsoid = np.sqrt(np.sum((offset / (spec.axes[:, None, None, None] * spec.radius_mm)) ** 2, axis=0))
    rho = ellipsoid * (1.0 + SHAPE_NOISE * noise)

    inside = brain[box]
    local = np.zeros(shape, dtype=np.uint8)
    oedema = (rho < spec.oedema_extent) & ((wm[box] > 0.3) | (rho < 1.25))
    local[oedema] = ED
    local[rho < 1.0] = ET
    local[rho < spec.core_fraction] = NCR
    # Keep the oedema connected to the lesion, as infiltration spreads from it.
    components, _ = ndimage.label(local > 0)
    lesion_ids = np.unique(components[(local == ET) | (local == NCR)])
    local[~np.isin(components, lesion_ids[lesion_ids > 0])] = 0
    local[~inside] = 0
    labels[box] = local
    return labels

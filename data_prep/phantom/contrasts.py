"""Clean (noise-free, site-free) modality images from tissue fractions and tumour labels.

Each voxel mixes the tissue means by its partial-volume fractions (CSF, GM, WM; their sum is
the brain fraction, so intensities fall to 0 at the brain edge), plus the template's own T1
detail (deep grey nuclei, fine gyri) carried into every modality with the modality's contrast.
Tumour compartments then replace the tissue signal with their own means, with soft edges.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .tumour import ED, ET, NCR

MR_MODALITIES = ("t1", "t1gd", "t2", "flair")
EXTRA_MODALITIES = ("us", "pet")
ALL_MODALITIES = MR_MODALITIES + EXTRA_MODALITIES

# Mean clean intensity per compartment; orderings follow the clinical contrasts:
# T1 WM > GM > CSF; T1Gd = T1 but the enhancing rim lights up; T2 CSF > GM > WM, oedema bright;
# FLAIR: CSF suppressed (dark), oedema bright; PET (FDG): GM > WM, hot rim, cold necrosis;
# US: anechoic CSF, echogenic lesion.
MEANS: dict[str, dict[str, float]] = {
    "t1":    {"csf": 0.22, "gm": 0.55, "wm": 0.80, "ncr": 0.18, "ed": 0.48, "et": 0.50},
    "t1gd":  {"csf": 0.22, "gm": 0.55, "wm": 0.80, "ncr": 0.18, "ed": 0.48, "et": 1.05},
    "t2":    {"csf": 1.00, "gm": 0.60, "wm": 0.40, "ncr": 0.92, "ed": 0.85, "et": 0.65},
    "flair": {"csf": 0.10, "gm": 0.60, "wm": 0.45, "ncr": 0.35, "ed": 0.95, "et": 0.70},
    "pet":   {"csf": 0.05, "gm": 0.80, "wm": 0.30, "ncr": 0.05, "ed": 0.22, "et": 1.60},
    "us":    {"csf": 0.05, "gm": 0.35, "wm": 0.50, "ncr": 0.15, "ed": 0.62, "et": 0.85},
}
TEXTURE_GAIN = {"t1": 1.0, "t1gd": 1.0, "t2": 0.8, "flair": 0.8, "pet": 0.5, "us": 0.5}
LESION_NAMES = {NCR: "ncr", ED: "ed", ET: "et"}


def clean_image(modality: str, csf: np.ndarray, gm: np.ndarray, wm: np.ndarray, texture: np.ndarray,
                lesion_weights: dict[int, np.ndarray]) -> np.ndarray:
    """Clean image float32 [X, Y, Z] in ~[0, 1] for one modality."""
    means = MEANS[modality]
    image = means["csf"] * csf + means["gm"] * gm + means["wm"] * wm
    image += TEXTURE_GAIN[modality] * (means["wm"] - means["csf"]) * texture * (csf + gm + wm)
    if lesion_weights:
        total = sum(lesion_weights.values())
        image *= 1.0 - total
        for label, weight in lesion_weights.items():
            image += means[LESION_NAMES[label]] * weight
    return np.clip(image, 0.0, None).astype(np.float32)


def soft_lesion_weights(labels: np.ndarray, brain_fraction: np.ndarray, spacing_mm: float) -> dict[int, np.ndarray]:
    """Per-compartment weights in [0, 1] with ~1 mm soft edges (sum <= brain fraction); {} without a lesion."""
    if not labels.any():
        return {}
    sigma = 0.8 / spacing_mm
    return {label: ndimage.gaussian_filter((labels == label).astype(np.float32), sigma) * brain_fraction
            for label in (NCR, ED, ET)}


def ultrasound(clean: np.ndarray, brain: np.ndarray, probe_mm: np.ndarray, target_mm: np.ndarray,
               spacing_mm: float, rng: np.random.Generator) -> np.ndarray:
    """B-mode-like image: echogenicity + bright interfaces, Rayleigh speckle, depth attenuation, fan FOV."""
    grid = np.indices(clean.shape, dtype=np.float32) * spacing_mm
    ray = grid - probe_mm.astype(np.float32)[:, None, None, None]
    depth = np.sqrt(np.sum(ray * ray, axis=0))
    axis = (target_mm - probe_mm) / np.linalg.norm(target_mm - probe_mm)
    cos_angle = np.tensordot(axis.astype(np.float32), ray, axes=1) / np.maximum(depth, 1e-3)
    fan = (cos_angle > np.cos(np.deg2rad(35.0))) & (depth < 110.0) & brain
    interfaces = ndimage.gaussian_gradient_magnitude(clean, sigma=1.0 / spacing_mm) * spacing_mm
    echo = clean + 1.5 * interfaces
    # Rayleigh speckle (|complex Gaussian|, spatially correlated), two looks compounded as scanners do.
    speckle = np.zeros(clean.shape, dtype=np.float32)
    for _ in range(2):
        re, im = (ndimage.gaussian_filter(rng.standard_normal(clean.shape, dtype=np.float32), 0.9) for _ in range(2))
        speckle += np.sqrt(re * re + im * im)
    speckle /= max(float(speckle.mean()), 1e-6)
    attenuation = np.exp(-0.012 * depth)
    envelope = echo * speckle * attenuation
    log_compressed = np.log1p(10.0 * envelope) / np.log1p(10.0)  # B-mode displays the log envelope
    return np.where(fan, log_compressed, 0.0).astype(np.float32)


def probe_position(brain: np.ndarray, target_mm: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Probe on the brain surface straight above (superior to) the target, 4 mm outside the brain."""
    x, y, z = np.round(target_mm / spacing_mm).astype(int)
    column = np.flatnonzero(brain[x, y, :])
    top = column.max() if column.size else z
    return np.array([target_mm[0], target_mm[1], top * spacing_mm + 4.0])


def pet(clean: np.ndarray, spacing_mm: float, fwhm_mm: float = 6.0) -> np.ndarray:
    """FDG-PET-like: the uptake map blurred by the scanner's point-spread function."""
    return ndimage.gaussian_filter(clean, sigma=fwhm_mm / 2.3548 / spacing_mm).astype(np.float32)

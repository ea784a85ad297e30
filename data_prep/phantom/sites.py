"""Acquisition "sites": per-subject gain, gamma, bias field and noise, so harmonisation matters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Site:
    name: str
    gain: float          # global intensity scale
    gamma: float         # intensity = clean ** gamma (keeps contrast order, changes its shape)
    bias: float          # strength of the smooth multiplicative bias field (log scale)
    noise: float         # noise std relative to the white-matter-ish signal (~0.5 of the clean range)


SITES = (
    Site("site-A", gain=1.00, gamma=1.00, bias=0.05, noise=0.010),
    Site("site-B", gain=0.75, gamma=1.20, bias=0.15, noise=0.030),
    Site("site-C", gain=1.30, gamma=0.85, bias=0.10, noise=0.020),
    Site("site-D", gain=1.05, gamma=1.05, bias=0.25, noise=0.045),
)
INTENSITY_SCALE = 1000.0   # MR-like arbitrary units
SUBJECT_GAIN_JITTER = 0.05  # per subject and modality, log-normal std


def sample_site(rng: np.random.Generator) -> Site:
    return SITES[int(rng.integers(len(SITES)))]


def bias_field(rng: np.random.Generator, shape: tuple[int, int, int], strength: float) -> np.ndarray:
    """exp(strength * s) with s a random quadratic polynomial of the normalised coordinates, max |s| = 1."""
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape]
    x, y, z = axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :]
    terms = (x, y, z, x * x - 1 / 3, y * y - 1 / 3, z * z - 1 / 3, x * y, x * z, y * z)
    coefficients = rng.uniform(-1.0, 1.0, size=len(terms)).astype(np.float32)
    field = np.zeros(shape, dtype=np.float32)
    for c, term in zip(coefficients, terms):
        field += c * term
    field /= max(float(np.abs(field).max()), 1e-6)
    return np.exp(strength * field)


def apply_site(clean: np.ndarray, region: np.ndarray, site: Site, rng: np.random.Generator,
               rician: bool = True) -> np.ndarray:
    """Site intensity model on a clean image in ~[0, 1]: gain * clean**gamma * bias + noise, 0 outside region.

    MR magnitude noise is Rician (|signal + complex Gaussian|); set rician=False for additive Gaussian.
    """
    gain = site.gain * np.exp(SUBJECT_GAIN_JITTER * rng.standard_normal()) * INTENSITY_SCALE
    field = bias_field(rng, clean.shape, site.bias)
    signal = gain * np.power(np.clip(clean, 0.0, None), site.gamma, dtype=np.float32) * field
    sigma = np.float32(site.noise * gain)
    n = int(region.sum())
    values = signal[region]
    if rician:
        real = values + sigma * rng.standard_normal(n, dtype=np.float32)
        imag = sigma * rng.standard_normal(n, dtype=np.float32)
        values = np.sqrt(real * real + imag * imag)
    else:
        values = np.clip(values + sigma * rng.standard_normal(n, dtype=np.float32), 0.0, None)
    out = np.zeros(clean.shape, dtype=np.float32)
    out[region] = values
    return out

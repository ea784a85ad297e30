"""One phantom subject in memory: deformed anatomy, optional tumour, site and modality images.

Every random component draws from its own stream of ``SeedSequence(seed, spawn_key=(index,))``,
so a subject depends only on (seed, index): not on the worker count, the cohort size or which
other modalities are generated. All of a subject's images share one deformed anatomy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .availability import sample_availability
from .contrasts import ALL_MODALITIES, clean_image, pet, probe_position, soft_lesion_weights, ultrasound
from .deformation import sample_deformation, source_points, subject_grid_mm, warp
from .sites import Site, apply_site, sample_site
from .template import Template
from .tumour import TumourSpec, sample_tumour, tumour_labels

# Stream positions: fixed forever, so adding a component never changes existing outputs.
_ANATOMY, _TUMOUR, _SITE, _AVAILABILITY = range(4)
_FIRST_MODALITY_STREAM = 4


@dataclass
class Subject:
    name: str
    site: Site
    available: dict[str, bool]
    tumour: TumourSpec | None
    images: dict[str, np.ndarray]   # modality -> float32 [X, Y, Z]; may include unavailable ones (preview)
    labels: np.ndarray              # uint8 [X, Y, Z], BraTS ids 0/1/2/4
    tissue: np.ndarray              # uint8 [X, Y, Z], 0 bg, 1 CSF, 2 GM, 3 WM


def subject_name(index: int) -> str:
    return f"sub-{index:03d}"


def tumour_assignment(subjects: int, fraction: float, seed: int) -> np.ndarray:
    """bool [subjects]: which subjects carry a tumour. Evenly interleaved with a seed-dependent
    phase, so any prefix of the cohort holds round(fraction * n) +- 1 tumours."""
    phase = np.random.default_rng(seed).random()
    k = np.arange(subjects + 1) * fraction + phase
    return np.diff(np.floor(k)) > 0


def make_subject(template: Template, index: int, seed: int, modalities: Sequence[str],
                 rates: Mapping[str, float], has_tumour: bool, all_modalities: bool = False) -> Subject:
    """Build subject ``index``; ``all_modalities`` also synthesises the unavailable ones (for previews)."""
    streams = [np.random.default_rng(s) for s in
               np.random.SeedSequence(seed, spawn_key=(index,)).spawn(_FIRST_MODALITY_STREAM + len(ALL_MODALITIES))]
    available = sample_availability(streams[_AVAILABILITY], rates)
    site = sample_site(streams[_SITE])
    tumour = sample_tumour(streams[_TUMOUR], template) if has_tumour else None
    deformation = sample_deformation(streams[_ANATOMY], template, tumour.mass_effect() if tumour else None)

    spacing = template.spacing_mm
    source = source_points(deformation, subject_grid_mm(template))
    shape = template.shape
    csf, gm, wm, brain_fraction, texture = (warp(v, source, spacing).reshape(shape) for v in
                                            (template.csf, template.gm, template.wm, template.mask, template.texture))
    del source
    brain = brain_fraction >= 0.5
    tissue = np.where(brain, np.argmax(np.stack([csf, gm, wm]), axis=0) + 1, 0).astype(np.uint8)
    labels = (tumour_labels(streams[_TUMOUR], tumour, wm, brain, spacing) if tumour is not None
              else np.zeros(shape, dtype=np.uint8))
    lesion = soft_lesion_weights(labels, brain_fraction, spacing)

    images: dict[str, np.ndarray] = {}
    for modality in modalities:
        if not (available[modality] or all_modalities):
            continue
        rng = streams[_FIRST_MODALITY_STREAM + ALL_MODALITIES.index(modality)]
        clean = clean_image(modality, csf, gm, wm, texture, lesion)
        region = brain_fraction > 0.1
        if modality == "pet":
            clean = pet(clean, spacing)
            region = clean > 0.02
        elif modality == "us":
            target = tumour.centre_mm if tumour is not None else template.brain_centre_mm
            probe = probe_position(brain, target, spacing)
            clean = ultrasound(clean, brain, probe, target, spacing, rng)
            region = clean > 0
        images[modality] = apply_site(clean, region, site, rng, rician=modality not in ("pet", "us"))
    return Subject(subject_name(index), site, available, tumour, images, labels, tissue)

"""Dice per test subject, condition and region.

Conditions: ``all`` (every modality the subject has) and ``missing:<modality>`` (that one removed,
the others kept), scored on every test subject with labels; ``missing:<m>`` only on the subjects
that have m and at least one other modality (removing what a subject lacks changes nothing).
Subjects of a cohort with missing scans are kept rather than dropped, so that ``n`` stays useful;
``complete`` counts those with every modality (on them ``all`` is every modality). Dice is 3-D over
the subject's stored slices that hold brain (``raysys.evaluate.slices.read_subject``), per region
with ``raysys.models.segmenter.regions.region_dice`` (NaN where the region is in neither the
prediction nor the truth); ``mean`` is the subject's mean over NCR, ED and ET.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from raysys.models.segmenter.regions import REGIONS, class_mean, region_dice

ALL = "all"
MISSING = "missing:"


def conditions(modalities: Sequence[str]) -> list[str]:
    return [ALL] + [f"{MISSING}{m}" for m in modalities]


def condition_available(condition: str, modalities: Sequence[str], has: np.ndarray) -> np.ndarray | None:
    """[M] bool: the modalities the segmenter gets under ``condition`` from a subject that has
    ``has`` [M]; None when the condition does not apply to the subject."""
    available = np.asarray(has, dtype=bool).copy()
    if condition != ALL:
        j = list(modalities).index(condition[len(MISSING):])
        if not available[j] or available.sum() < 2:
            return None
        available[j] = False
    return available


@dataclasses.dataclass(frozen=True)
class SubjectScore:
    subject: str
    condition: str
    dice: dict[str, float]  # region (REGION_NAMES) -> Dice, NaN where undefined


def scored_subjects(store: Any, fold: int) -> tuple[list[int], int]:
    """(test subjects to score, how many of them have every modality)."""
    test = [int(s) for s in store.split_subjects("test", fold)]
    return test, sum(bool(store.availability[s].all()) for s in test)


def subject_dice(inference: Any, store: Any, subject: int, context: int, batch_size: int = 32) -> Iterator[SubjectScore]:
    """One subject under every condition."""
    from raysys.evaluate.slices import read_subject

    slices = read_subject(store, subject, context=context)
    keep = slices.position
    truth = torch.from_numpy(np.asarray(store.volume(subject, "labels"))[keep].astype(np.int64))
    position = (keep + 0.5) / slices.count
    modalities = store.modalities
    for condition in conditions(modalities):
        chosen = condition_available(condition, modalities, store.availability[subject])
        if chosen is None:
            continue
        available = np.broadcast_to(chosen, (slices.n, len(modalities)))
        pred = np.concatenate([
            inference.segment(slices.images[i:i + batch_size], available[i:i + batch_size], position[i:i + batch_size])
            for i in range(0, slices.n, batch_size)
        ])
        dice = region_dice(torch.from_numpy(pred)[None], truth[None])  # [1, 5]: the subject's volume
        values = {region: float(dice[0, i]) for i, region in enumerate(REGIONS)}
        values["mean"] = float(class_mean(dice)[0])
        yield SubjectScore(slices.name, condition, values)


def evaluate_segmenter(inference: Any, store: Any, fold: int) -> list[SubjectScore]:
    """Every scored test subject (``scored_subjects``) under every condition."""
    if not store.has_labels:
        raise ValueError(f"store {store.url} has no labels to score a segmenter on")
    subjects, _ = scored_subjects(store, fold)
    context = inference.context or 1
    return [score for s in subjects for score in subject_dice(inference, store, s, context)]

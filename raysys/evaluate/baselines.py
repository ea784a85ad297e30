"""Trivial baselines every model must beat, scored on the same slices as the model.

* ``baseline:zeros``: predict 0 everywhere (the z-score mean of a normalised store).
* ``baseline:mean``: the training split's cohort-mean image of the target at the slice's
  position. Subjects keep different numbers of stored slices, so the position is relative:
  slice i of a subject with n stored slices falls in bin ``floor((i + 0.5) / n * B)``, with
  B = the smallest stored-slice count among the training subjects (every training subject then
  contributes to every bin).
* ``baseline:copy``: copy an available input. Per target, the other modalities are ranked by
  the mean SSIM of copying them onto the target over the training split's brain slices; a
  cell uses the best-ranked source among its inputs, never the target itself (copying the
  target onto itself is trivially perfect), and has no copy row when no other input exists.
  When the model reads raw images (``train.inputs=raw``), the copy is of what the model sees:
  the raw input, and the target's own raw image is a candidate too (identity harmonisation,
  the trivial answer to "raw -> normalised"), ranked like the others.

Every baseline has ``name`` and ``predict(subject, rows, inputs, targets) -> {target: [n, H, W]}``
(a target missing from the dict = the baseline does not apply to that cell).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from raysys.data.store import Store
from raysys.evaluate.scoring import score_slices
from raysys.evaluate.slices import SubjectSlices, read_subject

ZEROS, MEAN, COPY = "baseline:zeros", "baseline:mean", "baseline:copy"
BASELINES = (ZEROS, MEAN, COPY)


class ZerosBaseline:
    name = ZEROS

    def cache_key(self, inputs: Sequence[str], target: str) -> tuple:
        """The prediction depends on the target only (scores are reused across input subsets)."""
        return ()

    def predict(self, subject: SubjectSlices, rows: np.ndarray, inputs: Sequence[str], targets: Sequence[str]) -> dict[str, np.ndarray]:
        h, w = subject.mask.shape[1:]
        return {t: np.zeros((rows.size, h, w), dtype=np.float32) for t in targets}


def position_bins(position: np.ndarray, count: int, bins: int) -> np.ndarray:
    """Bin [Z] of slice positions ``position`` [Z] within a subject of ``count`` stored slices."""
    return np.minimum(((np.asarray(position) + 0.5) / count * bins).astype(int), bins - 1)


class MeanBaseline:
    """``means[target]`` [B, H, W]: cohort-mean image per relative-position bin (training split)."""

    name = MEAN

    def __init__(self, means: Mapping[str, np.ndarray], bins: int):
        self.means = dict(means)
        self.bins = int(bins)

    @classmethod
    def fit(cls, store: Store, subjects: Sequence[int]) -> "MeanBaseline":
        """Mean over the training ``subjects`` (indices) of every stored slice, per target and bin."""
        counts = [int(np.diff(store.slice_range(s))[0]) for s in subjects]
        if not counts:
            raise ValueError("MeanBaseline.fit: no training subjects")
        bins = max(1, min(counts))
        h, w = store.size
        means: dict[str, np.ndarray] = {}
        for modality in store.modalities:
            total = np.zeros((bins, h, w), dtype=np.float64)
            n = np.zeros(bins, dtype=np.int64)
            for s, count in zip(subjects, counts):
                if not store.available(s)[modality]:
                    continue
                volume = np.asarray(store.volume(s, modality), dtype=np.float64)
                b = position_bins(np.arange(count), count, bins)
                np.add.at(total, b, volume)
                n += np.bincount(b, minlength=bins)
            if n.sum() > 0:
                means[modality] = (total / np.maximum(n, 1)[:, None, None]).astype(np.float32)
        return cls(means, bins)

    def cache_key(self, inputs: Sequence[str], target: str) -> tuple:
        return ()

    def predict(self, subject: SubjectSlices, rows: np.ndarray, inputs: Sequence[str], targets: Sequence[str]) -> dict[str, np.ndarray]:
        b = position_bins(subject.position[rows], subject.count, self.bins)
        return {t: self.means[t][b] for t in targets if t in self.means}


class CopyBaseline:
    """``ranking[target]``: source modalities, best first (mean train SSIM of the copy);
    ``raw``: sources are raw images and the target's own raw image is one of them."""

    name = COPY

    def __init__(self, ranking: Mapping[str, Sequence[str]], modalities: Sequence[str], raw: bool = False):
        self.ranking = {t: list(r) for t, r in ranking.items()}
        self.modalities = list(modalities)
        self.raw = bool(raw)

    @classmethod
    def fit(cls, store: Store, subjects: Sequence[int], max_slices: int = 0, raw: bool = False) -> "CopyBaseline":
        """Rank sources per target by mean SSIM over the brain slices of the training ``subjects``
        (``raw``: of copying the raw source, the target's own raw image included)."""
        modalities = store.modalities
        scores: dict[tuple[str, str], list[np.ndarray]] = {}
        for s in subjects:
            subject = read_subject(store, int(s), context=1, max_slices=max_slices, raw=raw)
            have = [j for j, m in enumerate(modalities) if subject.available[m]]
            for target in have:
                for source in have:
                    if raw or source != target:
                        _, ssim = score_slices(subject.centre(source, raw), subject.centre(target), subject.mask,
                                               store.value_range)
                        scores.setdefault((modalities[source], modalities[target]), []).append(ssim)
        means = {pair: float(np.mean(np.concatenate(v))) for pair, v in scores.items()}
        return cls(rank_sources(means, modalities, include_target=raw), modalities, raw)

    def source(self, inputs: Sequence[str], target: str) -> str | None:
        """The copy source for a cell: the best-ranked input (never the target itself unless raw; None: no copy)."""
        candidates = [m for m in inputs if self.raw or m != target]
        ranked = [m for m in self.ranking.get(target, []) if m in candidates]
        unranked = [m for m in self.modalities if m in candidates and m not in ranked]  # no train pair: last
        order = ranked + unranked
        return order[0] if order else None

    def cache_key(self, inputs: Sequence[str], target: str) -> tuple | None:
        """The prediction depends on the chosen source only; None (no copy) is never cached."""
        source = self.source(inputs, target)
        return None if source is None else (source,)

    def predict(self, subject: SubjectSlices, rows: np.ndarray, inputs: Sequence[str], targets: Sequence[str]) -> dict[str, np.ndarray]:
        out = {}
        for t in targets:
            source = self.source(inputs, t)
            if source is not None:
                out[t] = subject.centre(self.modalities.index(source), self.raw)[rows]
        return out


def rank_sources(mean_ssim: Mapping[tuple[str, str], float], modalities: Sequence[str],
                 include_target: bool = False) -> dict[str, list[str]]:
    """``{target: [source, ...]}`` best first from ``{(source, target): mean SSIM}`` (ties: store order)."""
    ranking: dict[str, list[str]] = {}
    for target in modalities:
        pairs = [(s, v) for (s, t), v in mean_ssim.items() if t == target and (include_target or s != target)]
        pairs.sort(key=lambda sv: (-sv[1], list(modalities).index(sv[0])))
        ranking[target] = [s for s, _ in pairs]
    return ranking

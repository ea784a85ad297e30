"""The evaluated slices of one subject, read once: every stored slice whose brain mask is non-empty.

Shapes: ``images`` [Z, M, K, H, W] (M = store modalities, missing ones zeros, K context slices
with the subject's edge slices repeated as in ``SliceDataset``), ``mask`` [Z, H, W] bool,
``position`` [Z] = index of the slice within the subject's stored range, ``count`` = the
subject's number of stored slices (for the relative position of the mean baseline); ``raw``
[Z, M, K, H, W] the same slices of the store's raw images (read only when asked: models
trained on raw inputs), else None.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from raysys.data.store import Store


@dataclasses.dataclass
class SubjectSlices:
    name: str
    index: int
    available: dict[str, bool]
    images: np.ndarray    # [Z, M, K, H, W] float32
    mask: np.ndarray      # [Z, H, W] bool
    position: np.ndarray  # [Z] int, index within the subject's stored slices
    count: int            # stored slices of the subject
    raw: np.ndarray | None = None  # [Z, M, K, H, W] float32, raw images (``read_subject(raw=True)``)

    @property
    def n(self) -> int:
        return int(self.position.shape[0])

    def centre(self, modality_index: int, raw: bool = False) -> np.ndarray:
        """The centre slices of one modality: [Z, H, W] (``raw``: of the raw images)."""
        images = self.images if not raw else self.raw
        if images is None:
            raise ValueError(f"{self.name}: raw images were not read (read_subject(raw=True))")
        return images[:, modality_index, images.shape[2] // 2]


def evenly_spaced(n: int, k: int) -> np.ndarray:
    """``k`` evenly spaced indices of ``range(n)`` (all when ``k`` is 0 or >= n)."""
    if k <= 0 or k >= n:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, k)).astype(int))


def read_subject(store: Store, subject: int | str, context: int = 1, max_slices: int = 0, raw: bool = False) -> SubjectSlices:
    """One subject's slices with brain, ``max_slices`` > 0 evenly subsampled (``raw``: their raw images too)."""
    index = store.subject_index(subject)
    available = store.available(index)
    mask = np.asarray(store.volume(index, "mask")).astype(bool)          # [Z, H, W]
    count = int(mask.shape[0])
    keep = np.flatnonzero(mask.reshape(count, -1).any(1))
    keep = keep[evenly_spaced(keep.size, max_slices)]
    half = context // 2
    around = np.clip(keep[:, None] + np.arange(-half, half + 1)[None, :], 0, count - 1)  # [Z, K]
    h, w = mask.shape[1:]
    images = np.zeros((keep.size, len(store.modalities), context, h, w), dtype=np.float32)
    raw_images = np.zeros_like(images) if raw else None
    for j, modality in enumerate(store.modalities):
        if available[modality]:
            images[:, j] = np.asarray(store.volume(index, modality), dtype=np.float32)[around]
            if raw_images is not None:
                raw_images[:, j] = np.asarray(store.raw_volume(index, modality), dtype=np.float32)[around]
    return SubjectSlices(store.subjects[index], index, available, images, mask[keep], keep, count, raw_images)

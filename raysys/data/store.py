"""Read-only access to a complete raysys slice store (written by ``python -m data_prep.convert``)."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import zarr

from . import layout


PATH_DEPENDENT_ATTRS = ("arguments", "fingerprint", "failed")


class StoreError(Exception):
    """The URL is not a complete raysys store; the message names the URL."""


def open_store(url: str) -> "Store":
    """Open a complete store (local path or fsspec URL). Raises ``StoreError`` otherwise."""
    return Store(url)


class Store:
    """A complete store: subjects, modalities, attrs, per-subject volumes and the slice index.

    The small index arrays are read once; image arrays are opened on demand.
    """

    def __init__(self, url: str):
        # absolute, so the url still works in workers that chdir (Ray Train, Tune trials)
        self.url = str(url) if "://" in str(url) else os.path.abspath(str(url))
        try:
            self._root = zarr.open_group(layout.zarr_store(self.url, read_only=True), mode="r")
        except Exception as error:  # missing path, not zarr, zarr v2 ...
            raise StoreError(f"{self.url}: not a Zarr v3 store ({type(error).__name__}: {error})") from error
        attrs = dict(self._root.attrs)
        if "raysys_store_version" not in attrs:
            raise StoreError(f"{self.url}: not a raysys store (no raysys_store_version attribute)")
        if attrs["raysys_store_version"] != layout.STORE_VERSION:
            raise StoreError(f"{self.url}: store version {attrs['raysys_store_version']}, "
                             f"this reader reads version {layout.STORE_VERSION}")
        if attrs.get("complete") is not True:
            raise StoreError(f"{self.url}: store is incomplete (its conversion was interrupted or is "
                             f"still running); re-run python -m data_prep.convert with the same "
                             f"arguments to finish it")
        self.attrs: dict = attrs
        self.subjects: list[str] = list(attrs["subjects"])
        self.modalities: list[str] = list(attrs["modalities"])
        self.value_range: tuple[float, float] = tuple(attrs["value_range"])
        self.size: tuple[int, int] = tuple(attrs["size"])
        self.availability: np.ndarray = self._root[layout.AVAILABILITY][...]      # [N, M] bool
        self.slice_subject: np.ndarray = self._root[layout.SLICE_SUBJECT][...]    # [S]
        self.slice_z: np.ndarray = self._root[layout.SLICE_Z][...]                # [S]
        self.subject_start: np.ndarray = self._root[layout.SUBJECT_START][...]    # [N + 1]
        self.fold: np.ndarray = self._root[layout.FOLD][...]                      # [N]
        self.has_labels: bool = layout.LABELS in self._root
        # ``--keep-raw`` stores: raw/<modality> (per-volume scaling only) beside images/<modality>
        self.has_raw: bool = layout.RAW in self._root
        self.raw_range: tuple[float, float] | None = tuple(attrs["raw_range"]) if self.has_raw else None

    @property
    def store_id(self) -> str:
        """Stable content id: SHA-256 (first 16 hex) of the attrs, which hold the sources' SHA-256s.

        Path-dependent attrs (``arguments``, ``fingerprint``, ``failed``) are left out, so the same
        files converted with the same settings from another folder give the same id.
        """
        content = {k: v for k, v in self.attrs.items() if k not in PATH_DEPENDENT_ATTRS}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def n_slices(self) -> int:
        return int(self.slice_subject.shape[0])

    def subject_index(self, subject: str | int) -> int:
        if isinstance(subject, (int, np.integer)):
            if not 0 <= subject < len(self.subjects):
                raise KeyError(f"subject index {subject} outside 0..{len(self.subjects) - 1} in {self.url}")
            return int(subject)
        try:
            return self.subjects.index(subject)
        except ValueError:
            raise KeyError(f"subject {subject!r} not in store {self.url}") from None

    def available(self, subject: str | int) -> dict[str, bool]:
        row = self.availability[self.subject_index(subject)]
        return {m: bool(a) for m, a in zip(self.modalities, row)}

    def slice_range(self, subject: str | int) -> tuple[int, int]:
        """Global slice indices ``start:stop`` of a subject."""
        i = self.subject_index(subject)
        return int(self.subject_start[i]), int(self.subject_start[i + 1])

    def array(self, name: str) -> zarr.Array:
        """A slice array: ``images/<modality>``, ``raw/<modality>``, ``mask``, ``labels`` or ``tissue`` ([S, H, W])."""
        if name not in self._root:
            raise KeyError(f"array {name!r} not in store {self.url}")
        return self._root[name]

    def volume(self, subject: str | int, modality: str) -> np.ndarray:
        """The normalised stored slices of one subject [Z, H, W] (``mask``/``labels``/``tissue`` too)."""
        start, stop = self.slice_range(subject)
        if modality in self.modalities:
            if not self.available(subject)[modality]:
                raise KeyError(f"subject {self.subjects[self.subject_index(subject)]} has no {modality} "
                               f"in {self.url}")
            return self.array(f"{layout.IMAGES}/{modality}")[start:stop]
        if modality in (layout.MASK, layout.LABELS, layout.TISSUE):
            return self.array(modality)[start:stop]
        raise KeyError(f"modality {modality!r} not in store {self.url} (has {self.modalities})")

    def raw_volume(self, subject: str | int, modality: str) -> np.ndarray:
        """The raw stored slices of one subject [Z, H, W] (``has_raw`` stores: per-volume scaling only)."""
        if not self.has_raw:
            raise KeyError(f"store {self.url} has no raw images (convert with --keep-raw)")
        if not self.available(subject)[modality]:
            raise KeyError(f"subject {self.subjects[self.subject_index(subject)]} has no {modality} in {self.url}")
        start, stop = self.slice_range(subject)
        return self.array(f"{layout.RAW}/{modality}")[start:stop]

    def split_subjects(self, split: str, fold: int) -> np.ndarray:
        """Subject indices of a split: test = fold k, val = fold (k+1) % K, train = the rest."""
        folds = int(self.attrs["folds"])
        if not 0 <= fold < folds:
            raise ValueError(f"fold={fold}: store {self.url} has folds 0..{folds - 1}")
        test, val = self.fold == fold, self.fold == (fold + 1) % folds
        chosen = {"train": ~(test | val), "val": val, "test": test,
                  "all": np.ones_like(test)}.get(split)
        if chosen is None:
            raise ValueError(f"split={split!r}: expected train, val, test or all")
        return np.flatnonzero(chosen)

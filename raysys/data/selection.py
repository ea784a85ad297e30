"""Which subjects of a split a dataset over some of the store's modalities holds.

A subject with none of the chosen modalities has nothing to give (its items would be all-zero
with no available modality) and is always left out; ``complete`` keeps only the subjects that
have every chosen modality (the MMHVAE ablation "complete vs incomplete training data").
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .store import Store


def modality_columns(store: Store, modalities: Sequence[str]) -> list[int]:
    """Column of each of ``modalities`` in the store's order; ``ValueError`` naming unknown ones."""
    unknown = [m for m in modalities if m not in store.modalities]
    if unknown or not modalities:
        raise ValueError(f"modalities={list(modalities)}: {unknown or 'empty'} not in store modalities {store.modalities}")
    return [store.modalities.index(m) for m in modalities]


def split_subjects(store: Store, split: str, fold: int, modalities: Sequence[str] | None = None,
                   complete: bool = False) -> np.ndarray:
    """Subject indices of ``split`` (``Store.split_subjects``) that have at least one of
    ``modalities`` (default: the store's), or all of them when ``complete``."""
    subjects = store.split_subjects(split, fold)
    columns = modality_columns(store, store.modalities if modalities is None else modalities)
    have = store.availability[np.ix_(subjects, columns)]
    keep = have.all(axis=1) if complete else have.any(axis=1)
    return subjects[keep]

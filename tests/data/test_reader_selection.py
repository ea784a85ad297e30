"""SliceDataset over some of the store's modalities, and complete-only subjects (raysys.data.selection)."""

from __future__ import annotations

import numpy as np
import pytest

from raysys.data import SliceDataset, open_store
from raysys.data.selection import split_subjects


def expected(store, split: str, modalities: list[str], complete: bool) -> set[int]:
    """Written out per subject, independently of the vectorised selection."""
    out = set()
    for s in store.split_subjects(split, 0):
        have = [store.available(int(s))[m] for m in modalities]
        if (all(have) if complete else any(have)):
            out.add(int(s))
    return out


@pytest.mark.parametrize("modalities", [["t1gd", "t2"], ["t1gd"], ["t2", "flair"]])
def test_datasets_hold_the_subjects_with_any_or_every_chosen_modality(tiny_store, modalities):
    store = open_store(tiny_store)
    for complete in (False, True):
        dataset = SliceDataset(tiny_store, split="train", modalities=modalities, complete=complete, context=1)
        held = {int(s) for s in np.unique(dataset.slice_subjects)}
        assert held == expected(store, "train", modalities, complete)
        assert set(split_subjects(store, "train", 0, modalities, complete).tolist()) == held
    # the store's train split holds subjects lacking t1gd or t2: "complete" must leave some out
    assert expected(store, "train", ["t1gd", "t2"], True) < expected(store, "train", ["t1gd", "t2"], False)


def test_items_hold_only_the_chosen_modalities_in_the_given_order(tiny_store):
    store = open_store(tiny_store)
    dataset = SliceDataset(tiny_store, split="train", modalities=["t2", "t1gd"], context=1)
    every = SliceDataset(tiny_store, split="train", context=1)
    index = len(dataset) // 2
    item = dataset[index]
    assert item["images"].shape[:2] == (2, 1) and item["available"].any()
    g = int(item["slice"])
    full = every[int(np.flatnonzero(every.slices == g)[0])]
    columns = [store.modalities.index("t2"), store.modalities.index("t1gd")]
    assert np.array_equal(item["images"].numpy(), full["images"][columns].numpy())
    assert np.array_equal(item["available"].numpy(), full["available"][columns].numpy())


def test_unknown_modality_and_an_empty_complete_split_are_refused(tiny_store):
    with pytest.raises(ValueError, match="not in store modalities"):
        SliceDataset(tiny_store, split="train", modalities=["t2", "pd"])
    store = open_store(tiny_store)
    assert not expected(store, "val", list(store.modalities), True)  # every validation subject misses one
    with pytest.raises(ValueError, match="no subjects with all of the modalities"):
        SliceDataset(tiny_store, split="val", complete=True)

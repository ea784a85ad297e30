"""raysys.data.open_store on the phantom store: API, refusal of incomplete stores, folds by subject."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from raysys.data import SliceDataset, StoreError, open_store


def test_store_api(tiny_store):
    store = open_store(tiny_store)
    assert store.modalities == ["t1", "t1gd", "t2", "flair"]
    assert store.subjects == [f"sub-{i:03d}" for i in range(8)]
    assert store.attrs["size"] == [64, 64] and store.value_range == (-5.0, 5.0)
    assert store.attrs["converter_version"] and len(store.store_id) == 16
    assert store.store_id == open_store(tiny_store).store_id
    for subject in store.subjects:
        available = store.available(subject)
        assert set(available) == set(store.modalities) and any(available.values())
        modality = next(m for m, a in available.items() if a)
        volume = store.volume(subject, modality)
        start, stop = store.slice_range(subject)
        assert volume.shape == (stop - start, 64, 64)
        inside = volume[store.volume(subject, "mask")]
        assert abs(inside.mean()) < 0.2 and 0.7 < inside.std() < 1.2  # z-scored in the brain
        missing = [m for m, a in available.items() if not a]
        for m in missing:
            with pytest.raises(KeyError, match=m):
                store.volume(subject, m)
    with pytest.raises(KeyError, match="nobody"):
        store.available("nobody")


def test_incomplete_and_foreign_stores_are_refused(tiny_store, tmp_path):
    with pytest.raises(StoreError, match="not a Zarr"):
        open_store(str(tmp_path / "nothing-here"))
    zarr.open_group(str(tmp_path / "foreign.zarr"), mode="w").attrs["x"] = 1
    with pytest.raises(StoreError, match="not a raysys store"):
        open_store(str(tmp_path / "foreign.zarr"))
    copy = zarr.open_group(str(tmp_path / "half.zarr"), mode="w")
    copy.attrs.put({**dict(zarr.open_group(tiny_store, mode="r").attrs), "complete": False})
    with pytest.raises(StoreError, match=r"half\.zarr: store is incomplete"):
        open_store(str(tmp_path / "half.zarr"))


def test_folds_are_disjoint_by_subject_and_balanced(tiny_store):
    store = open_store(tiny_store)
    folds = store.attrs["folds"]
    assert folds == 4 and sorted(np.bincount(store.fold, minlength=folds)) == [2, 2, 2, 2]
    for k in range(folds):
        parts = {s: set(store.split_subjects(s, k)) for s in ("train", "val", "test")}
        assert not (parts["train"] & parts["val"]) and not (parts["train"] & parts["test"])
        assert not (parts["val"] & parts["test"])
        assert parts["train"] | parts["val"] | parts["test"] == set(range(len(store.subjects)))
        seen = {s: set(SliceDataset(store, split=s, fold=k).slice_subjects.tolist()) for s in parts}
        assert seen == parts
    # each availability pattern is spread over folds: no fold holds two of a pattern while another has none
    patterns = {}
    for fold, row in zip(store.fold, store.availability):
        patterns.setdefault(tuple(row), []).append(int(fold))
    for members in patterns.values():
        counts = np.bincount(members, minlength=folds)
        assert counts.max() - counts.min() <= 1

"""SliceDataset(raw=True): items carry the store's raw images beside the normalised ones."""

from __future__ import annotations

import numpy as np
import pytest

from raysys.data import SliceDataset, open_store


@pytest.mark.parametrize("preload", [True, False])
def test_raw_images_are_the_stored_raw_slices(raw_store, preload):
    store = open_store(raw_store)
    dataset = SliceDataset(raw_store, split="train", raw=True, preload=preload, context=3)
    for index in (0, len(dataset) // 2, len(dataset) - 1):
        item = dataset[index]
        g, subject = int(item["slice"]), int(item["subject"])
        first, stop = store.slice_range(subject)
        rows = np.clip(np.arange(g - 1, g + 2), first, stop - 1)
        assert item["raw_images"].shape == item["images"].shape
        for j, modality in enumerate(dataset.modalities):
            raw = item["raw_images"][j].numpy()
            if item["available"][j]:
                assert np.array_equal(raw, np.asarray(store.array(f"raw/{modality}")[first:stop])[rows - first])
                assert not np.array_equal(raw, item["images"][j].numpy())
            else:
                assert not raw.any()
    assert "raw_images" not in SliceDataset(raw_store, split="train", context=1)[0]


def test_raw_needs_a_keep_raw_store(tiny_store):
    with pytest.raises(ValueError, match="--keep-raw"):
        SliceDataset(tiny_store, split="train", raw=True)

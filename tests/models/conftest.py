"""Fixtures shared by the model tests."""

from __future__ import annotations

import pytest
from torch.utils.data import default_collate

from raysys.data import SliceDataset


@pytest.fixture(scope="module")
def phantom_batch(tiny_store):
    """Four slices with the largest brain masks, from distinct subjects (the store's own range)."""
    dataset = SliceDataset(tiny_store, split="train")
    areas = sorted(((int(dataset[i]["mask"].sum()), i) for i in range(len(dataset))), reverse=True)
    chosen, subjects = [], set()
    for _, index in areas:
        subject = int(dataset[index]["subject"])
        if subject not in subjects:
            chosen.append(index)
            subjects.add(subject)
        if len(chosen) == 4:
            break
    return default_collate([dataset[i] for i in chosen]), dataset.value_range

"""SliceDataset items, random hiding, distinct-subject batches, and DataLoader worker processes."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Subset

from raysys.data import DistinctSubjectBatchSampler, SliceDataset, open_store


def test_item_format_and_context_edges(tiny_store):
    store = open_store(tiny_store)
    dataset = SliceDataset(tiny_store, split="all", context=3, preload=False)
    start, stop = store.slice_range(0)
    item = dataset[0]                       # first slice of subject 0: the slice below is repeated
    assert item["images"].shape == (4, 3, 64, 64) and item["images"].dtype == torch.float32
    assert item["available"].dtype == torch.bool and item["mask"].shape == (64, 64)
    assert item["label"].dtype == torch.int64 and int(item["subject"]) == 0 and int(item["slice"]) == start
    t1 = store.volume(0, "t1")
    np.testing.assert_array_equal(item["images"][0, 0], t1[0])
    np.testing.assert_array_equal(item["images"][0, 1], t1[0])
    np.testing.assert_array_equal(item["images"][0, 2], t1[1])
    last = dataset[stop - 1 - start]
    np.testing.assert_array_equal(last["images"][0, 2], t1[-1])
    for index in range(0, len(dataset), 37):
        item = dataset[index]
        subject = int(item["subject"])
        for m, available in enumerate(store.availability[subject]):
            assert bool(item["available"][m]) == bool(available)
            assert bool(item["images"][m].abs().sum() > 0) == bool(available)
    preloaded = SliceDataset(tiny_store, split="all", context=3, preload=True)
    for index in (0, 100, len(dataset) - 1):
        for key, value in dataset[index].items():
            assert torch.equal(value, preloaded[index][key]), key


def test_hiding_keeps_one_and_is_deterministic(tiny_store):
    dataset = SliceDataset(tiny_store, split="train", fold=0, hide_prob=0.7, seed=3)
    plain = SliceDataset(tiny_store, split="train", fold=0)
    hidden_any = False
    for index in range(0, len(dataset), 5):
        item, full = dataset[index], plain[index]
        assert item["available"].sum() >= 1
        assert not (item["available"] & ~full["available"]).any()
        hidden = full["available"] & ~item["available"]
        hidden_any |= bool(hidden.any())
        assert not item["images"][hidden].any()
        assert torch.equal(item["available"], dataset[index]["available"])
    assert hidden_any
    first = [dataset[i]["available"].tolist() for i in range(40)]
    dataset.set_epoch(1)
    assert first != [dataset[i]["available"].tolist() for i in range(40)]


def test_bad_dataset_arguments(tiny_store):
    for kwargs, word in (({"context": 2}, "context"), ({"modalities": ["pet"]}, "modalities"),
                         ({"split": "dev"}, "split"), ({"fold": 9}, "fold"), ({"hide_prob": 1.0}, "hide_prob")):
        with pytest.raises(ValueError, match=word):
            SliceDataset(tiny_store, **kwargs)


def test_batches_hold_distinct_subjects_and_shard_evenly(tiny_store):
    dataset = SliceDataset(tiny_store, split="all")
    sampler = DistinctSubjectBatchSampler(dataset, batch_size=4, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) > 0
    for batch in batches:
        assert len(batch) == 4 and len({int(dataset.slice_subjects[i]) for i in batch}) == 4
    used = [i for batch in batches for i in batch]
    assert len(used) == len(set(used)) and len(used) > 0.9 * len(dataset)  # almost every slice, once
    assert batches == list(DistinctSubjectBatchSampler(dataset, batch_size=4, seed=1))
    sampler.set_epoch(1)
    assert list(sampler) != batches
    ranks = [list(DistinctSubjectBatchSampler(dataset, 4, seed=1, num_replicas=3, rank=r)) for r in range(3)]
    assert len({len(r) for r in ranks}) == 1
    assert not set(map(tuple, ranks[0])) & set(map(tuple, ranks[1]))
    with pytest.raises(ValueError, match="batch_size"):
        DistinctSubjectBatchSampler(dataset, batch_size=9)


def test_dataloader_with_two_worker_processes_returns_the_same_items(tiny_store):
    dataset = SliceDataset(tiny_store, split="train", fold=1, hide_prob=0.5, seed=2, preload=False)
    unpickled = pickle.loads(pickle.dumps(dataset))[0]   # picklable without open handles
    first = dataset[0]                                   # open zarr in the parent first: workers must reopen (fork)
    assert all(torch.equal(unpickled[key], first[key]) for key in first)
    subset = Subset(dataset, list(range(0, len(dataset), 7))[:24])
    sampler = DistinctSubjectBatchSampler(dataset, batch_size=2, seed=0)
    in_process = list(DataLoader(subset, batch_size=6, num_workers=0))
    workers = list(DataLoader(subset, batch_size=6, num_workers=2, multiprocessing_context="fork"))
    assert len(in_process) == len(workers) == 4
    for a, b in zip(in_process, workers):
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key
    shared = SliceDataset(tiny_store, split="train", fold=1, hide_prob=0.5, seed=2, preload=True).load()
    forked = list(DataLoader(Subset(shared, subset.indices), batch_size=6, num_workers=2,
                             multiprocessing_context="fork"))
    for a, b in zip(in_process, forked):
        for key in a:
            assert torch.equal(a[key], b[key]), key
    batch = next(iter(DataLoader(dataset, batch_sampler=sampler, num_workers=2)))
    assert batch["images"].shape == (2, 4, 3, 64, 64) and batch["subject"][0] != batch["subject"][1]

"""Batches whose slices come from DISTINCT subjects (the similarity loss pairs different subjects)."""

from __future__ import annotations

import heapq
from typing import Iterator

import numpy as np
from torch.utils.data import Sampler


class DistinctSubjectBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices, no two from the same subject.

    Each batch takes one slice from each of the ``batch_size`` subjects with the most slices
    left (random tie-break), which uses as many slices as possible. Batches are shuffled and
    deterministic per (seed, epoch); ``set_epoch`` changes them. Batches are dealt round-robin
    to ``num_replicas`` ranks, each rank getting the same number (extra batches dropped, or
    repeated from the start when ``drop_last`` is False).
    """

    def __init__(self, dataset, batch_size: int, shuffle: bool = True, seed: int = 0, drop_last: bool = True,
                 num_replicas: int = 1, rank: int = 0):
        subjects = np.asarray(getattr(dataset, "slice_subjects", None))
        if subjects.ndim != 1 or subjects.size != len(dataset):
            raise ValueError("dataset: needs a slice_subjects array (subject of each index), like SliceDataset")
        n_subjects = np.unique(subjects).size
        if not 1 <= batch_size <= n_subjects:
            raise ValueError(f"batch_size={batch_size}: must be in 1..{n_subjects} (distinct subjects available)")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"rank={rank}, num_replicas={num_replicas}: need 0 <= rank < num_replicas")
        self.subjects = subjects
        self.batch_size, self.shuffle, self.seed = int(batch_size), bool(shuffle), int(seed)
        self.drop_last, self.num_replicas, self.rank = bool(drop_last), int(num_replicas), int(rank)
        self.epoch = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _all_batches(self) -> list[list[int]]:
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        rng = np.random.default_rng((self.seed, self.epoch))
        queues: dict[int, list[int]] = {}
        for index, subject in enumerate(self.subjects.tolist()):
            queues.setdefault(subject, []).append(index)
        tie = (lambda: float(rng.random())) if self.shuffle else (lambda: 0.0)
        heap = []
        for subject, indices in queues.items():
            if self.shuffle:
                rng.shuffle(indices)
            heap.append((-len(indices), tie(), subject))
        heapq.heapify(heap)
        batches: list[list[int]] = []
        while heap:
            if len(heap) < self.batch_size and self.drop_last:
                break
            taken = [heapq.heappop(heap) for _ in range(min(self.batch_size, len(heap)))]
            batches.append([queues[subject].pop() for _, _, subject in taken])
            for left, _, subject in taken:
                if left + 1 < 0:
                    heapq.heappush(heap, (left + 1, tie(), subject))
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        per_rank = len(batches) // self.num_replicas if self.drop_last else -(-len(batches) // self.num_replicas)
        total = per_rank * self.num_replicas
        batches = (batches * (1 + total // max(1, len(batches))))[:total] if batches else []
        self._cache = (self.epoch, batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._all_batches()[self.rank::self.num_replicas]

    def __len__(self) -> int:
        return len(self._all_batches()) // self.num_replicas

"""``SliceDataset``: one item = one (subject, axial slice) with its context slices, all modalities.

Item (dict of tensors; default collation adds the batch dimension B):
    images     float32 [M, K, H, W]   K = context slices (edge slices repeated), missing = zeros
    available  bool    [M]            after optional random hiding (>= 1 always kept)
    mask       bool    [H, W]         brain mask of the centre slice
    subject    int64   []             subject index in the store
    slice      int64   []             global slice index
    position   float32 []             relative position in the subject's stored slices, (i + 0.5) / count
    label      int64   [H, W]         centre-slice labels, only when the store has labels
    raw_images float32 [M, K, H, W]   ``raw=True`` only: the same slices from ``raw/<modality>``
                                      (per-volume scaling only; zeros where ``available`` is False)

Zarr is opened lazily in each process (first item after construction, unpickling or fork),
so the dataset pickles to DataLoader/Ray workers without open handles.
"""

from __future__ import annotations

import asyncio
import os

import numpy as np
import torch
from torch.utils.data import Dataset
from zarr.core.sync import sync

from . import fastread, layout
from .selection import modality_columns, split_subjects
from .preloaded import preloaded
from .store import Store, open_store

DEFAULT_PRELOAD_BYTES = 256 * 2**20


class SliceDataset(Dataset):
    """Slices of the subjects of one split (``train``/``val``/``test``/``all``) of one fold.

    ``raw``: items also hold ``raw_images`` (stores converted with ``--keep-raw``).
    ``modalities``: the store modalities the items hold (default all; a subject with none of them
    is left out). ``complete``: only the subjects that have every one of them.
    ``hide_prob``: each available modality is hidden (zeroed, ``available`` False) with this
    probability, keeping at least one; random but deterministic given (seed, epoch, index).
    ``preload``: True reads the needed arrays into memory once per process (or once in the
    parent when ``load()`` is called before forking workers); None (default) does so when they
    take at most ``DEFAULT_PRELOAD_BYTES``; False reads every item from Zarr.
    ``fast``: without preloading, read local stores with ``raysys.data.fastread`` (plain file
    reads of the shards, decoded with numcodecs) instead of zarr-python; arrays or stores it does
    not handle (e.g. memory://, s3://) use zarr. ``RAYSYS_FASTREAD=0`` turns it off.
    """

    def __init__(self, store_or_url: Store | str, split: str = "train", fold: int = 0,
                 modalities: list[str] | tuple[str, ...] | None = None, context: int = 3,
                 hide_prob: float = 0.0, seed: int = 0, preload: bool | None = None,
                 fast: bool = True, complete: bool = False, raw: bool = False):
        store = store_or_url if isinstance(store_or_url, Store) else open_store(store_or_url)
        if context < 1 or context % 2 == 0:
            raise ValueError(f"context={context}: must be an odd number >= 1")
        if not 0.0 <= hide_prob < 1.0:
            raise ValueError(f"hide_prob={hide_prob}: must be in [0, 1)")
        chosen = list(store.modalities if modalities is None else modalities)
        columns = modality_columns(store, chosen)
        self.url = store.url
        self.modalities = chosen
        self.context = context
        self.hide_prob = float(hide_prob)
        self.seed = int(seed)
        self.epoch = 0
        self.has_labels = store.has_labels
        self.value_range = store.value_range
        self.store_id = store.store_id
        self.size: tuple[int, int] = tuple(store.size)
        subjects = split_subjects(store, split, fold, chosen, complete)
        if subjects.size == 0:
            which = f"with {'all' if complete else 'any'} of the modalities {chosen} " if chosen != store.modalities or complete else ""
            raise ValueError(f"split={split!r} of fold={fold} has no subjects {which}in {store.url}")
        self.availability = store.availability[:, columns]                      # [N, M]
        self.subject_start = store.subject_start
        in_split = np.isin(store.slice_subject, subjects)
        self.slices = np.flatnonzero(in_split)                                  # global slice ids
        self.slice_subjects = store.slice_subject[self.slices].astype(np.int64)  # per dataset index
        if raw and not store.has_raw:
            raise ValueError(f"raw=True: store {store.url} has no raw images (convert it with --keep-raw)")
        self.raw = bool(raw)
        self._image_names = [f"{layout.IMAGES}/{m}" for m in chosen]
        self._raw_names = [f"{layout.RAW}/{m}" for m in chosen] if self.raw else []
        names = self._image_names + self._raw_names + [layout.MASK]
        self._array_names = names + ([layout.LABELS] if self.has_labels else [])
        item_bytes = sum(np.dtype(store.array(n).dtype).itemsize for n in self._array_names)
        total = item_bytes * store.n_slices * store.size[0] * store.size[1]
        self.preload = total <= DEFAULT_PRELOAD_BYTES if preload is None else bool(preload)
        self.fast = bool(fast) and os.environ.get("RAYSYS_FASTREAD", "1") != "0"
        self._arrays: dict | None = None
        self._fast: dict = {}
        self._pid: int | None = None

    def __len__(self) -> int:
        return int(self.slices.size)

    def set_epoch(self, epoch: int) -> None:
        """Changes the random hiding (takes effect in workers created after the call)."""
        self.epoch = int(epoch)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        # never ship zarr handles, open files or preloaded copies
        state["_arrays"], state["_pid"], state["_fast"] = None, None, {}
        return state

    def _open(self) -> dict:
        # zarr handles are reopened after a fork; preloaded numpy arrays are kept (shared copy-on-write)
        if self._arrays is None or (self._pid != os.getpid() and not self.preload):
            store = open_store(self.url)
            if self.preload:
                arrays = {name: preloaded(store, name) for name in self._array_names}
            else:
                arrays = {name: store.array(name) for name in self._array_names}
            if not self.preload and self.fast:
                self._fast = {name: reader for name in self._array_names
                              if (reader := fastread.open_array(self.url, name)) is not None}
            self._arrays, self._pid = arrays, os.getpid()
        return self._arrays

    def load(self) -> "SliceDataset":
        """Open (and with ``preload``, read into memory) now; call it in the parent process so that
        forked DataLoader workers share the preloaded arrays instead of each reading its own copy."""
        self._open()
        return self

    def _hidden(self, index: int, available: np.ndarray) -> np.ndarray:
        if self.hide_prob == 0.0 or available.sum() <= 1:
            return available
        rng = np.random.default_rng((self.seed, self.epoch, index))
        keep = available & (rng.random(available.size) >= self.hide_prob)
        if not keep.any():
            keep[rng.choice(np.flatnonzero(available))] = True
        return keep

    def _read(self, arrays: dict, requests: list[tuple[str, int, int, np.ndarray | None]]) -> list[np.ndarray]:
        """Slices ``z0:z1`` of ``arrays[name]`` for each request ``(name, z0, z1, out)``; Zarr reads
        are issued concurrently. Where ``out`` is given the fast reader may decode into it in place
        (the result is then ``out`` itself)."""
        if self.preload:
            return [arrays[name][z0:z1] for name, z0, z1, _ in requests]
        results: list = [None] * len(requests)
        fast = self._fast
        for i, (name, z0, z1, out) in enumerate(requests):
            reader = fast.get(name)
            if reader is None:
                continue
            try:
                results[i] = reader.read(z0, z1, out if out is not None and out.dtype == reader.out_dtype else None)
            except Exception:   # anything unexpected: zarr reads it (and raises if it is broken)
                results[i] = None
        rest = [i for i, r in enumerate(results) if r is None]
        if rest:
            async def gather():
                return await asyncio.gather(*(arrays[requests[i][0]].async_array.getitem(
                    slice(requests[i][1], requests[i][2])) for i in rest))
            # one round trip to zarr's event loop per item instead of one per array
            for i, a in zip(rest, sync(gather())):
                results[i] = np.asarray(a)
        return results

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        arrays = self._open()
        g = int(self.slices[index])
        subject = int(self.slice_subjects[index])
        first, stop = int(self.subject_start[subject]), int(self.subject_start[subject + 1])
        half = self.context // 2
        lo, hi = max(first, g - half), min(stop, g + half + 1)
        height, width = self.size
        shape = (len(self.modalities), self.context, height, width)
        stacks = {"images": (np.zeros(shape, dtype=np.float32), self._image_names)}
        if self.raw:
            stacks["raw_images"] = (np.zeros(shape, dtype=np.float32), self._raw_names)
        inside = hi - lo == self.context          # no edge slice repeated: read straight into images
        available = self._hidden(index, self.availability[subject].copy())
        wanted = [m for m in range(len(self.modalities)) if available[m]]
        reads = [(stack, names[m], m, stack[m] if inside else None) for stack, names in stacks.values() for m in wanted]
        requests = [(name, lo, hi, target) for _, name, _, target in reads]
        requests.append((layout.MASK, g, g + 1, None))
        if self.has_labels:
            requests.append((layout.LABELS, g, g + 1, None))
        blocks = self._read(arrays, requests)
        # positions of the K context slices inside the read block [lo, hi): edges repeated
        rows = slice(None) if inside else np.clip(np.arange(g - half, g + half + 1), first, stop - 1) - lo
        for (stack, _, m, target), block in zip(reads, blocks):
            if block is not target:           # not decoded in place (preloaded, zarr, other dtype)
                stack[m] = block[rows]
        images = stacks["images"][0]
        item = {
            "images": torch.from_numpy(images),
            "available": torch.from_numpy(available.astype(bool)),
            "mask": torch.from_numpy(np.array(blocks[len(reads)][0], dtype=bool)),  # a copy: preloaded arrays are read-only
            "subject": torch.tensor(subject, dtype=torch.int64),
            "slice": torch.tensor(g, dtype=torch.int64),
            "position": torch.tensor((g - first + 0.5) / (stop - first), dtype=torch.float32),
        }
        if self.has_labels:
            item["label"] = torch.from_numpy(np.array(blocks[-1][0], dtype=np.int64))
        if self.raw:
            item["raw_images"] = torch.from_numpy(stacks["raw_images"][0])
        return item

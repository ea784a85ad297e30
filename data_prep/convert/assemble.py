"""The output store: open or resume it, then assemble staged subjects into shard-aligned arrays.

Why staging: a subject's slice count is known only after it is processed, and concurrent
writes into one shard lose data (read-modify-write). So subjects are staged first, then every
assembly task writes a range of WHOLE shards that no other task touches.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import zarr
from zarr.core.sync import sync

from raysys.data import layout

from .discover import ConvertError
from .subject import COMPRESSOR


def open_output(url: str, fingerprint: str, arguments: dict) -> tuple[zarr.Group, bool]:
    """Create the output group, or reopen one started with the same arguments.

    Returns (root group, already complete). Refuses a store made with other arguments, or a
    folder/store that is not a raysys store.
    """
    store = layout.zarr_store(url)
    if not sync(store.exists("zarr.json")) and not sync(store.is_empty("")):
        raise ConvertError(f"--output {url}: exists and is not a raysys store (no zarr.json); "
                           f"choose another path")
    try:
        root = zarr.open_group(store, mode="a")
    except Exception as error:  # zarr raises several types for foreign content
        raise ConvertError(f"--output {url}: cannot open as a Zarr v3 group ({error})") from error
    attrs = dict(root.attrs)
    if "raysys_store_version" not in attrs:
        if list(root.keys()) or attrs:
            raise ConvertError(f"--output {url}: exists and is not a raysys store; choose another path")
        root.attrs.put({"raysys_store_version": layout.STORE_VERSION, "complete": False,
                        "fingerprint": fingerprint, "arguments": arguments})
        return root, False
    if attrs.get("fingerprint") != fingerprint:
        old = attrs.get("arguments", {})
        changed = sorted(k for k in set(old) | set(arguments) if old.get(k) != arguments.get(k))
        raise ConvertError(f"--output {url}: store was started with different arguments or inputs "
                           f"(differs in: {', '.join(changed) or 'converter version'}); "
                           f"re-run with the same arguments to resume, or use a new --output")
    return root, bool(attrs.get("complete"))


def staged_subjects(root: zarr.Group) -> dict[str, dict]:
    """Metadata of every subject whose staging finished (``done`` written last)."""
    if layout.STAGING not in root:
        return {}
    staging = root[layout.STAGING]
    done = {}
    for name, group in staging.groups():
        attrs = dict(group.attrs)
        if attrs.get("done"):
            done[name] = attrs
    return done


def assign_folds(patterns: list[tuple[bool, ...]], folds: int, seed: int) -> np.ndarray:
    """k-fold id per subject: subjects are shuffled (seeded) within each availability pattern and
    dealt round-robin, continuing across patterns, so folds are balanced in size and pattern."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(patterns), dtype=np.int8)
    turn = 0
    for pattern in sorted(set(patterns)):
        members = [i for i, p in enumerate(patterns) if p == pattern]
        for i in rng.permutation(members):
            fold[i] = turn % folds
            turn += 1
    return fold


@dataclasses.dataclass(frozen=True)
class Plan:
    """Where each staged subject goes: ``subjects[i]`` occupies slices ``start[i]:start[i+1]``."""

    url: str
    subjects: tuple[str, ...]
    start: tuple[int, ...]
    arrays: tuple[str, ...]        # array paths to fill (images/<m>, mask, labels, tissue)


def create_arrays(root: zarr.Group, plan: Plan, size: tuple[int, int], dtype: str, shard_slices: int,
                  ) -> None:
    """(Re)create the slice arrays: one-slice chunks inside ``shard_slices``-slice shards (1: unsharded)."""
    total = plan.start[-1]
    for name in plan.arrays:
        array_dtype = dtype if name.startswith(layout.IMAGES) else (bool if name == layout.MASK else "uint8")
        root.create_array(name, shape=(total, *size), dtype=array_dtype, chunks=(1, *size),
                          shards=None if shard_slices == 1 else (min(shard_slices, total), *size), fill_value=0,
                          compressors=[COMPRESSOR] if array_dtype != bool else "auto",
                          config={"write_empty_chunks": False}, overwrite=True)


def assemble_block(plan: Plan, first: int, stop: int) -> int:
    """Copy staged slices ``first:stop`` (whole shards) into the final arrays; returns slices written."""
    root = zarr.open_group(layout.zarr_store(plan.url), mode="r+")
    start = np.asarray(plan.start)
    for name in plan.arrays:
        target = root[name]
        block = np.zeros((stop - first, *target.shape[1:]), dtype=target.dtype)
        for i in range(np.searchsorted(start, first, side="right") - 1, len(plan.subjects)):
            lo, hi = start[i], start[i + 1]
            if lo >= stop:
                break
            staged = root[layout.STAGING][plan.subjects[i]]
            if name not in staged:   # missing modality / no labels: leave fill value, costs nothing
                continue
            a, b = max(lo, first), min(hi, stop)
            block[a - first:b - first] = staged[name][a - lo:b - lo]
        target[first:stop] = block
    return stop - first


def blocks(total: int, shard_slices: int, tasks_hint: int) -> list[tuple[int, int]]:
    """Split [0, total) into ranges of whole shards, about ``tasks_hint`` of them."""
    shards = -(-total // shard_slices)
    per_task = max(1, -(-shards // max(1, tasks_hint)))
    step = per_task * shard_slices
    return [(a, min(a + step, total)) for a in range(0, total, step)]


def fingerprint_of(arguments: dict) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(arguments, sort_keys=True).encode()).hexdigest()

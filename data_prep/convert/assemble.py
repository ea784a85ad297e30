"""The output store: open or resume it, then assemble staged subjects into shard-aligned arrays.

Why staging: a subject's slice count is known only after it is processed, and concurrent
writes into one shard lose data (read-modify-write). So subjects are staged first (each slice
already encoded as a final chunk), then every assembly task writes a range of WHOLE shards that
no other task touches: it only frames the staged chunk bytes into shards (Zarr v3 sharding
format: chunks, then an index of (offset, length) uint64 pairs and its CRC32C) and stores each
shard with one write, so no chunk is compressed twice and no shard is read back.
"""

from __future__ import annotations

import dataclasses
import json

import google_crc32c
import numpy as np
import zarr
import zarr.storage
from zarr.codecs import ShardingCodec
from zarr.codecs.sharding import ShardingCodecIndexLocation
from zarr.core.sync import sync

from raysys.data import layout

from .discover import ConvertError
from .storeio import get_many, put_many
from .subject import DEFAULT_COMPRESSION, array_settings, decode_blob, staged_key

EMPTY = 2**64 - 1
"""Index entry (offset and length) of a chunk that is not stored (all fill value)."""


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
    staged: tuple[tuple[str, ...], ...] | None = None   # arrays each subject staged (None: look them up)


def create_arrays(root: zarr.Group, plan: Plan, size: tuple[int, int], dtype: str, shard_slices: int,
                  compression: str = DEFAULT_COMPRESSION) -> None:
    """(Re)create the slice arrays: one-slice chunks inside ``shard_slices``-slice shards (1: unsharded)."""
    total = plan.start[-1]
    for name in plan.arrays:
        settings = array_settings(name, size, dtype, compression)
        array = root.create_array(name, shape=(total, *size),
                                  shards=None if shard_slices == 1 else (min(shard_slices, total), *size),
                                  overwrite=True, **settings)
        check_format(array, settings)


def check_format(array: zarr.Array, settings: dict) -> None:
    """Fail loudly unless ``array`` stores chunks encoded like ``encode_slices``' in the shard format
    ``assemble_block`` writes (guards against a zarr version with other defaults)."""
    reference = zarr.create_array(zarr.storage.MemoryStore(), shape=(1, *settings["chunks"][1:]), **settings)
    codecs = array.metadata.codecs
    inner = codecs
    if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec):
        sharding = codecs[0]
        if (sharding.index_location != ShardingCodecIndexLocation.end
                or [c.to_dict() for c in sharding.index_codecs]
                != [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]
                or tuple(sharding.chunk_shape) != tuple(settings["chunks"])):
            raise RuntimeError(f"{array.path}: unexpected sharding codec {sharding.to_dict()}")
        inner = sharding.codecs
    if [c.to_dict() for c in inner] != [c.to_dict() for c in reference.metadata.codecs]:
        raise RuntimeError(f"{array.path}: chunk codecs {[c.to_dict() for c in inner]} differ from the "
                           f"staging codecs {[c.to_dict() for c in reference.metadata.codecs]}")


def shard_bytes(chunks: list[bytes | None]) -> bytes | None:
    """One shard (Zarr v3 sharding codec, index at the end) of one-slice chunks; None if all are empty."""
    if all(chunk is None for chunk in chunks):
        return None
    index = np.full((len(chunks), 2), EMPTY, dtype="<u8")
    parts, offset = [], 0
    for j, chunk in enumerate(chunks):
        if chunk is not None:
            index[j] = (offset, len(chunk))
            parts.append(chunk)
            offset += len(chunk)
    index_bytes = index.tobytes()
    return b"".join([*parts, index_bytes, google_crc32c.value(index_bytes).to_bytes(4, "little")])


def assemble_block(plan: Plan, first: int, stop: int) -> int:
    """Write staged slices ``first:stop`` (whole shards) into the final arrays; returns slices written.

    Each shard (or, unsharded, each chunk) is one store write of already encoded chunks.
    """
    store = layout.zarr_store(plan.url)
    root = zarr.open_group(store, mode="r+")
    start = np.asarray(plan.start)
    owners = []
    for i in range(int(np.searchsorted(start, first, side="right")) - 1, len(plan.subjects)):
        if start[i] >= stop:
            break
        owners.append(i)
    for name in plan.arrays:
        target = root[name]
        codec = target.metadata.codecs[0]
        per_shard = target.metadata.chunk_grid.chunk_shape[0] if isinstance(codec, ShardingCodec) else 1
        if first % per_shard:
            raise ValueError(f"slice {first} is not the start of a shard of {per_shard}")
        chunks: list[bytes | None] = [None] * (stop - first)
        having = [i for i in owners if plan.staged is None or name in plan.staged[i]]
        blobs = get_many(store, [staged_key(plan.subjects[i], name) for i in having])
        for i, blob in zip(having, blobs):
            if blob is None:      # missing modality / no labels: leave fill value, costs nothing
                if plan.staged is not None:
                    raise RuntimeError(f"staged {name} of {plan.subjects[i]} is missing from {plan.url}")
                continue
            lo, hi = int(start[i]), int(start[i + 1])
            staged = decode_blob(blob)
            if len(staged) != hi - lo:
                raise RuntimeError(f"staged {name} of {plan.subjects[i]} has {len(staged)} slices, "
                                   f"expected {hi - lo}")
            a, b = max(lo, first), min(hi, stop)
            chunks[a - first:b - first] = staged[a - lo:b - lo]
        writes = []
        for s in range(first // per_shard, -(-stop // per_shard)):
            group = chunks[s * per_shard - first:(s + 1) * per_shard - first]
            group += [None] * (per_shard - len(group))   # the last shard may extend past the array
            data = shard_bytes(group) if per_shard > 1 else group[0]
            if data is not None:
                writes.append((f"{target.path}/{target.metadata.encode_chunk_key((s, 0, 0))}", data))
        put_many(store, writes)
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

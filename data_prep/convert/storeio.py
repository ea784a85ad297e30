"""Whole-object reads and writes of raw bytes in the output store (staged blobs, shards).

A local store is written with plain file I/O in the calling thread (each file written to a
temporary name, then renamed into place, as zarr's LocalStore does): going through zarr's
event loop cost ~0.4 ms per object and serialised the Dask threads on that one loop. Any
other store (memory://, s3://, ...) goes through zarr's async store API, batched.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import zarr.storage
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync


def _local_root(store) -> Path | None:
    return Path(store.root) if isinstance(store, zarr.storage.LocalStore) else None


def put_many(store, items: list[tuple[str, bytes]]) -> None:
    """Write each (key, bytes) as one object, replacing what was there."""
    root = _local_root(store)
    if root is None:
        sync(_put_all(store, items))
        return
    made: set[str] = set()     # folders known to exist (each shard has its own: c/<i>/0/0)
    for key, value in items:
        path = os.path.join(root, key)
        folder = os.path.dirname(path)
        if folder not in made:
            os.makedirs(folder, exist_ok=True)
            made.add(folder)
        partial = f"{path}.{uuid.uuid4().hex}.partial"
        try:
            with open(partial, "wb") as handle:
                handle.write(value)
            os.replace(partial, path)
        except BaseException:
            if os.path.exists(partial):
                os.unlink(partial)
            raise


def get_many(store, keys: list[str]) -> list[bytes | None]:
    """The bytes of each key (None where the object does not exist)."""
    root = _local_root(store)
    if root is None:
        return [None if value is None else value.to_bytes() for value in sync(_get_all(store, keys))]
    values = []
    for key in keys:
        try:
            values.append((root / key).read_bytes())
        except FileNotFoundError:
            values.append(None)
    return values


async def _put_all(store, items: list[tuple[str, bytes]]) -> None:
    prototype = default_buffer_prototype()
    await asyncio.gather(*(store.set(key, prototype.buffer.from_bytes(value)) for key, value in items))


async def _get_all(store, keys: list[str]) -> list:
    prototype = default_buffer_prototype()
    return await asyncio.gather(*(store.get(key, prototype=prototype) for key in keys))

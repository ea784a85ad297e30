"""Names shared by the store's writer (data_prep.convert) and its reader (raysys.data).

Store layout (Zarr v3 group), see docs/readme/30-store.md:
    images/<modality>  [S, H, W] float32|float16   one-slice chunks, ``shard_slices``-slice shards
    raw/<modality>     [S, H, W] float32|float16   optional (``--keep-raw``): per-volume scaling only
    mask               [S, H, W] bool              brain mask
    labels             [S, H, W] uint8             tumour labels (optional)
    tissue             [S, H, W] uint8             tissue map (optional)
    availability       [N, M] bool                 subject x modality
    slice_subject      [S] int32                   subject index of each slice
    slice_z            [S] int32                   axial index in the RAS volume
    subject_start      [N + 1] int64               slices of subject i are start[i]:start[i+1]
    fold               [N] int8                    k-fold assignment by subject
"""

from __future__ import annotations

import os
from pathlib import Path

import zarr
import zarr.storage

from raysys.urls import local_path

STORE_VERSION = 1
IMAGES = "images"
RAW = "raw"
MASK = "mask"
LABELS = "labels"
TISSUE = "tissue"
AVAILABILITY = "availability"
SLICE_SUBJECT = "slice_subject"
SLICE_Z = "slice_z"
SUBJECT_START = "subject_start"
FOLD = "fold"
STAGING = "_staging"


def zarr_store(url: str, read_only: bool = False):
    """A zarr store for a local path, ``file://`` URL or any other fsspec URL (memory://, s3://...)."""
    path = local_path(url)
    if path is not None:
        if not read_only:
            Path(path).mkdir(parents=True, exist_ok=True)
        return zarr.storage.LocalStore(path, read_only=read_only)
    url = str(url)
    if read_only:
        return cached(zarr.storage.FsspecStore.from_url(url, read_only=True))
    # A writer lists what it (or an earlier, interrupted run) already wrote: a cached directory
    # listing (s3fs, gcsfs) would hide the groups written since, so listings are not cached.
    return zarr.storage.FsspecStore.from_url(url, read_only=False, storage_options={"use_listings_cache": False})


REMOTE_CACHE_ENV = "RAYSYS_REMOTE_CACHE_BYTES"
REMOTE_CACHE_DEFAULT = 2 * 1024**3


def cached(store):
    """A remote store behind an in-memory LRU cache of the byte ranges read through it.

    Zarr reads a shard's index once and then each one-slice chunk as a range request; the cache
    keeps both. A dataset opens its store once per process (again after a fork), so a worker's
    later epochs re-read nothing it already fetched. The bound, ``RAYSYS_REMOTE_CACHE_BYTES``
    (default 2 GiB; 0 turns the cache off), holds per opened store.
    """
    from zarr.experimental.cache_store import CacheStore

    size = int(os.environ.get(REMOTE_CACHE_ENV, REMOTE_CACHE_DEFAULT))
    if size <= 0:
        return store
    return CacheStore(store, cache_store=zarr.storage.MemoryStore(), max_size=size, cache_set_data=False)

"""One Dask task: load, check, mask, normalise, resize and stage one subject.

The result is written to ``_staging/<subject>`` inside the output store: per final array one
object holding every slice already encoded exactly as a chunk of that array (same codecs, see
``encode_slices``), so the compression runs here, in parallel, and assembly only moves bytes.
No two tasks ever touch the same object; the group's ``done`` attribute is written last and is
what a resumed conversion trusts.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading

import numcodecs
import numpy as np
import zarr
import zarr.storage
from zarr.codecs import BloscCodec

from raysys.data import layout

from . import geometry, normalise
from .storeio import put_many
from .volumes import InputError, load_subject

CRASH_AFTER_ENV = "RAYSYS_CONVERT_CRASH_AFTER"
"""Testing hook: when set to N, the process exits abruptly (os._exit) after staging N subjects."""
_staged_in_process = 0
_staged_lock = threading.Lock()

COMPRESSORS = {"lz4": BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle"),
               "zstd": BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle"),
               "none": None}
COMPRESSIONS = tuple(COMPRESSORS)
DEFAULT_COMPRESSION = "lz4"
"""``lz4`` (default): Blosc-LZ4 (level 5, no shuffle) chunks, every array; ``zstd``: Blosc-zstd
(bitshuffle, level 3) chunks (bool mask: zarr's default); ``none``: no compressor at all, chunks
are the raw little-endian bytes (just the ``bytes`` codec inside the sharding codec).
Measured on the phantom's slices (docs/readme/30-store.md): lz4 stores are about as small as zstd
ones (ratio 3.3-3.7), lz4 encodes 10-15x and decodes 7-10x faster; byte shuffle made LZ4 decode
1.4-2x slower for no smaller store."""


def array_settings(name: str, size: tuple[int, int], dtype: str, compression: str = DEFAULT_COMPRESSION) -> dict:
    """``zarr.create_array`` settings of the final slice array ``name`` (without shape and shards)."""
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression {compression!r}: expected one of {', '.join(COMPRESSIONS)}")
    image = name.startswith((f"{layout.IMAGES}/", f"{layout.RAW}/"))
    array_dtype = dtype if image else (bool if name == layout.MASK else "uint8")
    compressor = COMPRESSORS[compression]
    if compressor is None:
        compressors = None
    elif compression == "zstd" and array_dtype is bool:
        compressors = "auto"      # as stores written before the lz4 default (they still resume)
    else:
        compressors = [compressor]
    return {"dtype": array_dtype, "chunks": (1, *size), "fill_value": 0, "compressors": compressors,
            "config": {"write_empty_chunks": False}}


def staged_key(subject: str, name: str) -> str:
    """Store key of one subject's encoded slices of the final array ``name``."""
    return f"{layout.STAGING}/{subject}/{name.replace('/', '_')}.chunks"


def _numcodecs_compressor(codec):
    """The numcodecs object that zarr itself uses for a Blosc or Zstd chunk codec, else None."""
    description = codec.to_dict()
    config = dict(description.get("configuration", {}))
    if description["name"] == "blosc":
        shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[config["shuffle"]]
        return numcodecs.Blosc.from_config({**config, "shuffle": shuffle})
    if description["name"] == "zstd":
        return numcodecs.Zstd(level=config["level"], checksum=config["checksum"])
    return None


@functools.lru_cache(maxsize=64)
def _chunk_encoding(name: str, size: tuple[int, int], dtype: str, compression: str) -> tuple[np.dtype, list | None]:
    """(dtype of the final array, the numcodecs compressors its chunks pass through in order), read
    once per process from an in-memory zarr array with the final settings; compressors None when
    zarr's chunk encoding is not ``bytes`` (little-endian) + Blosc/Zstd (zarr then encodes)."""
    array = zarr.create_array(zarr.storage.MemoryStore(), shape=(1, *size), **array_settings(name, size, dtype, compression))
    codecs = array.metadata.codecs
    first = codecs[0].to_dict()
    compressors = [_numcodecs_compressor(codec) for codec in codecs[1:]]
    plain_bytes = first["name"] == "bytes" and first.get("configuration", {}).get("endian", "little") == "little"
    return array.dtype, compressors if plain_bytes and all(c is not None for c in compressors) else None


def encode_slices(name: str, data: np.ndarray, size: tuple[int, int], dtype: str,
                  compression: str = DEFAULT_COMPRESSION) -> bytes:
    """Encode every slice of ``data`` [n, H, W] as a chunk of the final array ``name``.

    The codecs are those zarr chooses for the final array's chunks (read from an in-memory
    array with the same settings); Blosc/Zstd chunks are compressed directly with the numcodecs
    objects zarr uses (zarr's per-chunk overhead dominated at small slices) and chunks without a
    compressor (``bytes`` codec only) are the slice's raw little-endian bytes; anything else is
    encoded by zarr itself. All-zero slices are not stored (``write_empty_chunks=False``). Returns one blob:
    a header of n + 1 little-endian uint64 (n, then each chunk's length; 0 = all fill value,
    not stored) followed by the chunks.
    """
    array_dtype, compressors = _chunk_encoding(name, tuple(size), dtype, compression)
    fast = compressors is not None and data.dtype == array_dtype
    if fast:
        data = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<"))
        parts = []
        for k in range(data.shape[0]):
            raw = data[k]
            if not raw.any():
                parts.append(b"")
                continue
            encoded = raw.reshape(-1).view(np.uint8)
            for compressor in compressors:
                encoded = compressor.encode(encoded)
            parts.append(bytes(encoded))
    else:
        chunks: dict = {}
        array = zarr.create_array(zarr.storage.MemoryStore(store_dict=chunks), shape=data.shape,
                                  **array_settings(name, size, dtype, compression))
        array[...] = data
        encoded = [chunks.get(array.metadata.encode_chunk_key((k, 0, 0))) for k in range(data.shape[0])]
        parts = [b"" if chunk is None else chunk.to_bytes() for chunk in encoded]
    header = np.array([len(parts), *(len(part) for part in parts)], dtype="<u8").tobytes()
    return b"".join([header, *parts])


def decode_blob(blob) -> list[bytes | None]:
    """Inverse of ``encode_slices``' framing: the encoded chunk of each slice (None = fill value)."""
    view = memoryview(blob)
    n = int(np.frombuffer(view[:8], dtype="<u8")[0])
    lengths = np.frombuffer(view[8:8 * (n + 1)], dtype="<u8").astype(np.int64)
    ends = 8 * (n + 1) + np.cumsum(lengths)
    return [bytes(view[end - length:end]) if length else None for end, length in zip(ends, lengths)]


BLOCK_SLICES = 16
"""Slices normalised and resized together, within their own brain bounding box (measured: 16
slices of a 1 mm volume keep the working set in cache and cut the resizing work ~25 %)."""


@dataclasses.dataclass(frozen=True)
class SubjectJob:
    """What one task needs: the subject, its files, and the conversion settings."""

    url: str
    subject: str
    files: dict[str, str]          # canonical modality -> path (images, labels, tissue)
    size: tuple[int, int]
    slices: tuple[int, int] | None
    normalise: str
    dtype: str
    strict: bool
    compression: str = DEFAULT_COMPRESSION
    keep_raw: bool = False         # also stage raw/<modality> (per-volume scaling only)


@dataclasses.dataclass(frozen=True)
class SubjectResult:
    subject: str
    error: str | None = None       # one line "<path>: <problem>" when the subject failed
    path: str | None = None


def prepare(job: SubjectJob) -> dict:
    """Load and preprocess one subject -> arrays [Z, H, W] and metadata (no store access).

    Volumes stay in nibabel's layout ([X, Y, Z], Fortran order) until resizing: statistics come
    from the whole volume, only the kept slab of axial slices is normalised, and the axial
    transpose/flip is a view that ``fit_in_plane`` folds into its interpolation matrices.
    """
    integer = {"labels", "tissue"}
    volumes, affine, sha = load_subject(job.files, integer_modalities=integer)
    images = {m: v for m, v in volumes.items() if m not in integer}
    labels, tissue = volumes.get("labels"), volumes.get("tissue")
    if not images:
        raise InputError(next(iter(job.files.values())), "subject has no image modality")
    first_image = job.files[next(iter(images))]
    arrays, _, keep, stats = preprocess(images, tissue, job.size, job.slices, job.normalise, first_image, job.keep_raw)
    slab = slice(int(keep[0]), int(keep[-1]) + 1)
    for name in [n for n in arrays if n.startswith((f"{layout.IMAGES}/", f"{layout.RAW}/"))]:
        arrays[name] = arrays[name].astype(job.dtype, copy=False)
    if labels is not None:      # tumour labels may reach past an estimated mask: the whole plane
        arrays[layout.LABELS] = geometry.fit_in_plane(geometry.axial_view(labels[:, :, slab]), job.size, order=0)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    height, width = geometry.padded_plane(images[next(iter(images))].shape[1],
                                          images[next(iter(images))].shape[0], job.size)
    spacing = [float(zooms[2]), float(zooms[1] * height / job.size[0]), float(zooms[0] * width / job.size[1])]
    meta = {"n_slices": int(keep.size), "z": [int(z) for z in keep], "sha256": sha,
            "modalities": sorted(images), "normalisation": stats, "spacing": spacing,
            "has_labels": labels is not None, "has_tissue": tissue is not None}
    return {"arrays": arrays, "meta": meta}


def preprocess(images: dict[str, np.ndarray], tissue: np.ndarray | None, size: tuple[int, int],
               slices: tuple[int, int] | None, method: str, first_image: str, keep_raw: bool = False
               ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, dict]:
    """The store's preprocessing of one subject's RAS volumes [X, Y, Z]: brain mask, normalisation
    fitted on the whole volume, choice of axial slices, resize of the kept slab (``resize_slab``).

    Returns (``resize_slab``'s arrays, float32 images; the brain mask [X, Y, Z]; the kept axial
    indices, one contiguous range; the normalisation statistics). ``prepare`` (the store) and
    ``raysys.predict`` (new NIfTI files for a registered model) both call it, so a subject is
    preprocessed the same way by both. A ValueError becomes an ``InputError`` on ``first_image``.
    ``keep_raw``: also ``raw/<modality>`` (``normalise.raw_scale``; each p99 recorded in the
    statistics under ``raw_p99``).
    """
    try:
        mask = geometry.brain_mask(images, tissue)
        params, stats = normalise.fit_subject(images, mask, tissue, method)
        raw = {m: normalise.raw_scale(v, mask) for m, v in images.items()} if keep_raw else None
        keep = geometry.choose_slices(geometry.axial_areas(mask), slices)
    except ValueError as error:
        raise InputError(first_image, str(error)) from error
    if raw is not None:
        stats["raw_p99"] = {m: r[2]["p99"] for m, r in raw.items()}
        raw = {m: r[:2] for m, r in raw.items()}
    slab = slice(int(keep[0]), int(keep[-1]) + 1)            # kept slices are one contiguous range
    return resize_slab(images, params, mask, tissue, slab, size, method, raw), mask, keep, stats


def resize_slab(images: dict[str, np.ndarray], params: dict, mask: np.ndarray, tissue: np.ndarray | None,
                slab: slice, size: tuple[int, int], method: str, raw_params: dict | None = None) -> dict[str, np.ndarray]:
    """Normalised, resized axial slices [Z, H, W] of ``slab`` (RAS volumes [X, Y, Z]): each image
    (float32, 0 outside the resized mask), the mask and, when given, the tissue map; with
    ``raw_params`` ({modality: (offset, scale)} of ``normalise.raw_scale``) also ``raw/<modality>``.

    Works block by block (``BLOCK_SLICES``), each within the brain's bounding box of its block:
    outside it every slice is 0 (the tissue map too, as the mask is then ``tissue > 0``).
    """
    depth, plane = slab.stop - slab.start, (mask.shape[1], mask.shape[0])    # axial rows (Y), columns (X)
    scalings = {layout.IMAGES: (params, method)}
    if raw_params is not None:
        scalings[layout.RAW] = (raw_params, normalise.RAW)
    out = {f"{kind}/{m}": np.zeros((depth, *size), dtype=np.float32) for kind in scalings for m in images}
    out[layout.MASK] = np.zeros((depth, *size), dtype=bool)
    if tissue is not None:
        out[layout.TISSUE] = np.zeros((depth, *size), dtype=np.uint8)
    for first in range(slab.start, slab.stop, BLOCK_SLICES):
        block = slice(first, min(first + BLOCK_SLICES, slab.stop))
        box = geometry.bounding_box(mask[:, :, block])
        if box is None:
            continue
        window = (box[0], box[1], block)
        in_window = {"plane": plane, "offset": (plane[0] - box[1].stop, box[0].start)}   # rows run along -Y
        rows = slice(first - slab.start, block.stop - slab.start)
        out[layout.MASK][rows] = geometry.fit_in_plane(geometry.axial_view(mask[window]).view(np.uint8), size,
                                                       order=0, **in_window) > 0
        for modality, volume in images.items():
            for kind, (kind_params, kind_method) in scalings.items():
                scaled = normalise.apply(volume[window], mask[window], *kind_params[modality], method=kind_method)
                out[f"{kind}/{modality}"][rows] = geometry.fit_in_plane(geometry.axial_view(scaled), size, order=1, **in_window)
        if tissue is not None:
            out[layout.TISSUE][rows] = geometry.fit_in_plane(geometry.axial_view(tissue[window]), size, order=0,
                                                             **in_window)
    outside = ~out[layout.MASK]
    for name in [f"{kind}/{m}" for kind in scalings for m in images]:  # the resized mask applies again (bilinear weights reach past the edge)
        np.copyto(out[name], np.float32(0), where=outside)
    return out


def stage(job: SubjectJob) -> SubjectResult:
    """Prepare one subject and write it to the staging area; errors become a failed result."""
    try:
        prepared = prepare(job)
    except Exception as error:  # noqa: BLE001 - one bad subject must not stop the batch
        if not isinstance(error, InputError):
            path = next(iter(job.files.values()))
            error = InputError(path, f"unexpected {type(error).__name__}: {error}")
        if job.strict:
            raise error
        return SubjectResult(job.subject, error=str(error), path=error.path)
    store = layout.zarr_store(job.url)
    group = zarr.open_group(store, mode="r+").require_group(f"{layout.STAGING}/{job.subject}")
    group.attrs.put({"done": False})
    put_many(store, [(staged_key(job.subject, name), encode_slices(name, data, job.size, job.dtype,
                                                                    job.compression))
                     for name, data in prepared["arrays"].items()])
    group.attrs.put({"done": True, **prepared["meta"], "arrays": sorted(prepared["arrays"])})
    _maybe_crash()
    return SubjectResult(job.subject)


def _maybe_crash() -> None:
    global _staged_in_process
    limit = os.environ.get(CRASH_AFTER_ENV)
    if not limit:
        return
    with _staged_lock:
        _staged_in_process += 1
        if _staged_in_process >= int(limit):
            os._exit(75)  # simulate a kill: no cleanup, no complete flag

"""Fast slice reads from LOCAL raysys stores, bypassing zarr-python's per-call overhead.

``open_array(url, name)`` returns a ``FastArray`` for a slice array of a local store (plain path
or ``file://``), or None when anything about the array is not understood here (other URL
schemes, unknown codecs or data types, other chunk grids or key encodings...); callers then
use zarr. ``FastArray.read(z0, z1)`` returns slices ``[z0, z1)`` exactly as zarr would:

* the array's ``zarr.json`` is parsed once: data type, fill value, chunk key encoding, and the
  codec pipeline (Zarr v3 ``sharding_indexed`` with its index codecs and index location, or
  plain chunks), restricted to ``bytes`` (+ endianness) followed by ``blosc``/``zstd``/``gzip``/
  ``crc32c``, decoded with numcodecs straight into the output array (Blosc decompresses into
  it; ``read(z0, z1, out=...)`` fills a caller's array, e.g. one modality of a training item);
* each needed shard's index ((offset, nbytes) uint64 pairs per inner chunk, CRC32C checked) is
  read once with ``os.pread`` and cached (a complete store is immutable); then only the needed
  chunks' byte ranges are read (one ``pread`` over the contiguous span when they are adjacent);
* missing shard files and missing chunks (offset = nbytes = 2**64 - 1) give the fill value;
* file descriptors of up to ``MAX_OPEN_FILES`` shards are kept open (the oldest opened is closed
  first), closed and reopened in a new process after a fork;
  one lock per array serialises reads across threads (an evicted descriptor is never reused
  under another thread's read).
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict

import numpy as np

from raysys.urls import local_path

EMPTY = 2**64 - 1
MAX_OPEN_FILES = 128
MAX_CACHED_INDEXES = 65536

_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
           "float16", "float32", "float64"}
_SPECIAL_FILL = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}


class Unsupported(Exception):
    """The array's format is not handled here; use zarr."""


def open_array(url: str, name: str) -> "FastArray | None":
    """A fast reader for array ``name`` of the store at ``url``, or None (use zarr instead)."""
    root = local_path(url)  # a local store's directory; None for other URL schemes
    if root is None:
        return None
    try:
        with open(os.path.join(root, name, "zarr.json"), "rb") as handle:
            meta = json.load(handle)
        return FastArray(os.path.join(root, name), meta)
    except (Unsupported, OSError, ValueError, KeyError, TypeError):
        return None


def _crc32c(data: bytes) -> int:
    import google_crc32c

    return google_crc32c.value(data)


def _byte_codecs(codecs: list) -> tuple[str, list]:
    """(endian of the ``bytes`` codec, (name, numcodecs codec) of the bytes->bytes codecs, in codec order)."""
    import numcodecs

    if not codecs or codecs[0].get("name") != "bytes":
        raise Unsupported(f"first codec {codecs[:1]}")
    endian = (codecs[0].get("configuration") or {}).get("endian")
    decoders = []
    for codec in codecs[1:]:
        name = codec.get("name")
        if name == "blosc":
            decoders.append(("blosc", numcodecs.Blosc()))
        elif name == "zstd":
            decoders.append(("zstd", numcodecs.Zstd()))
        elif name == "gzip":
            decoders.append(("gzip", numcodecs.GZip()))
        elif name == "crc32c":
            decoders.append(("crc32c", None))
        else:
            raise Unsupported(f"codec {name}")
    return endian, decoders


def _decode_bytes(data: bytes, decoders: list) -> bytes:
    for name, codec in reversed(decoders):
        if name == "crc32c":
            body, checksum = data[:-4], data[-4:]
            if _crc32c(bytes(body)) != int.from_bytes(checksum, "little"):
                raise ValueError("CRC32C mismatch")
            data = body
        else:
            data = codec.decode(data)
    return data


def chunk_decoder(decoders: list):
    """``decode(data, dest)``: decode one chunk straight into ``dest`` (C-contiguous, exactly one
    chunk of the stored dtype), no temporary arrays.

    Decoding runs the codecs in reverse, so the first bytes->bytes codec runs last: when it is
    Blosc it decompresses into ``dest`` itself; otherwise the decoded bytes are copied into it.
    Built once per array: a read calls it for every chunk.
    """
    if decoders and decoders[0][0] == "blosc":
        from numcodecs.blosc import decompress

        rest = decoders[1:]

        def decode_blosc(data, dest: np.ndarray) -> None:
            if rest:
                data = _decode_bytes(data, rest)
            # Blosc header: bytes 4..8 hold the uncompressed size (little-endian uint32)
            if len(data) < 16 or int.from_bytes(data[4:8], "little") != dest.nbytes:
                raise ValueError(f"Blosc chunk does not decode to {dest.nbytes} bytes")
            decompress(data, dest)
        return decode_blosc

    def decode_other(data, dest: np.ndarray) -> None:
        data = _decode_bytes(data, decoders)
        if len(data) != dest.nbytes:
            raise ValueError(f"decoded chunk has {len(data)} bytes, expected {dest.nbytes}")
        dest.reshape(-1)[...] = np.frombuffer(data, dtype=dest.dtype)
    return decode_other


class FastArray:
    """Reads slices along axis 0 of one local Zarr v3 array (see the module docstring)."""

    def __init__(self, path: str, meta: dict):
        if meta.get("zarr_format") != 3 or meta.get("node_type") != "array":
            raise Unsupported("not a Zarr v3 array")
        if meta.get("storage_transformers"):
            raise Unsupported("storage transformers")
        self.path = path
        self.shape = tuple(int(s) for s in meta["shape"])
        if len(self.shape) < 1:
            raise Unsupported("0-d array")
        if meta["data_type"] not in _DTYPES:
            raise Unsupported(f"data type {meta['data_type']}")
        dtype = np.dtype(meta["data_type"])
        fill = meta.get("fill_value")
        fill = _SPECIAL_FILL.get(fill, fill) if isinstance(fill, str) else fill
        if not isinstance(fill, (bool, int, float)):
            raise Unsupported(f"fill value {fill!r}")
        self.fill = np.array(fill, dtype=dtype)
        grid = meta["chunk_grid"]
        if grid.get("name") != "regular":
            raise Unsupported("chunk grid")
        outer = tuple(int(c) for c in grid["configuration"]["chunk_shape"])
        if len(outer) != len(self.shape) or outer[1:] != self.shape[1:]:
            raise Unsupported("chunks do not span whole slices")
        encoding = meta.get("chunk_key_encoding", {"name": "default"})
        separator = (encoding.get("configuration") or {}).get("separator")
        if encoding.get("name") == "default":
            self._prefix, self._sep = ["c"], separator or "/"
        elif encoding.get("name") == "v2":
            self._prefix, self._sep = [], separator or "."
        else:
            raise Unsupported("chunk key encoding")
        if self._sep not in ("/", "."):
            raise Unsupported("separator")
        codecs = meta["codecs"]
        self.sharded = len(codecs) == 1 and codecs[0].get("name") == "sharding_indexed"
        if self.sharded:
            config = codecs[0]["configuration"]
            inner = tuple(int(c) for c in config["chunk_shape"])
            if len(inner) != len(outer) or inner[1:] != outer[1:] or outer[0] % inner[0]:
                raise Unsupported("inner chunks")
            self.inner = inner
            self.per_shard = outer[0] // inner[0]
            self.index_at_end = config.get("index_location", "end") == "end"
            if config.get("index_location", "end") not in ("start", "end"):
                raise Unsupported("index location")
            index_endian, index_decoders = _byte_codecs(config.get("index_codecs") or [])
            if index_endian not in ("little", "big") or [n for n, _ in index_decoders] not in ([], ["crc32c"]):
                raise Unsupported("index codecs")
            self._index_dtype = np.dtype("<u8" if index_endian == "little" else ">u8")
            self._index_crc = bool(index_decoders)
            self.index_nbytes = 16 * self.per_shard + (4 if self._index_crc else 0)
            chunk_codecs = config["codecs"]
        else:
            self.inner = outer
            self.per_shard = 1
            chunk_codecs = codecs
        endian, self._decoders = _byte_codecs(chunk_codecs)
        self._decode_into = chunk_decoder(self._decoders)
        if dtype.itemsize > 1:
            if endian not in ("little", "big"):
                raise Unsupported("bytes codec without endianness")
            dtype = dtype.newbyteorder("<" if endian == "little" else ">")
        self.dtype = dtype                  # as stored
        self.out_dtype = self.fill.dtype    # native order, what zarr returns
        self.shard_slices = outer[0]
        self._plane = self.shape[1:]
        self._open_shards: OrderedDict[int, tuple[int, list[tuple[int, int]]]] = OrderedDict()  # fd, index
        self._indexes: OrderedDict[int, list[tuple[int, int]]] = OrderedDict()
        self._missing: set[int] = set()     # shards never written (all fill value); the store is immutable
        self._pid = os.getpid()
        self._lock = threading.Lock()

    # ---- files -------------------------------------------------------------------------------
    def _key(self, shard: int) -> str:
        parts = self._prefix + [str(shard)] + ["0"] * (len(self.shape) - 1)
        return os.path.join(self.path, self._sep.join(parts))

    def _check_pid(self) -> None:
        if self._pid != os.getpid():   # forked: the descriptors are copies, the lock may be held
            self._lock = threading.Lock()
            self.close()
            self._pid = os.getpid()

    def _shard(self, shard: int) -> tuple[int, list[tuple[int, int]]] | None:
        """(file descriptor, chunk index) of a shard file, or None when it does not exist."""
        entry = self._open_shards.get(shard)
        if entry is not None:
            return entry
        if shard in self._missing:
            return None
        path = self._key(shard)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            self._missing.add(shard)
            return None
        try:
            index = self._index(shard, path, fd) if self.sharded else [(0, os.fstat(fd).st_size)]
        except BaseException:
            os.close(fd)
            raise
        entry = self._open_shards[shard] = (fd, index)
        while len(self._open_shards) > MAX_OPEN_FILES:     # oldest opened first
            _, (old, _) = self._open_shards.popitem(last=False)
            os.close(old)
        return entry

    def close(self) -> None:
        fds, self._open_shards = [fd for fd, _ in self._open_shards.values()], OrderedDict()
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_open_shards"], state["_lock"], state["_decode_into"] = OrderedDict(), None, None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock, self._pid = threading.Lock(), os.getpid()
        self._decode_into = chunk_decoder(self._decoders)

    @staticmethod
    def _pread(fd: int, size: int, offset: int) -> bytes:
        data = os.pread(fd, size, offset)
        if len(data) != size:
            raise ValueError(f"short read: {len(data)} of {size} bytes at {offset}")
        return data

    def _index(self, shard: int, path: str, fd: int) -> list[tuple[int, int]]:
        index = self._indexes.get(shard)
        if index is not None:
            return index
        if self.index_at_end:
            offset = os.fstat(fd).st_size - self.index_nbytes
            if offset < 0:
                raise ValueError(f"{path}: shard smaller than its index")
        else:
            offset = 0
        raw = self._pread(fd, self.index_nbytes, offset)
        if self._index_crc:
            raw, checksum = raw[:-4], raw[-4:]
            if _crc32c(raw) != int.from_bytes(checksum, "little"):
                raise ValueError(f"{path}: shard index CRC32C mismatch")
        index = [(int(o), int(n)) for o, n in np.frombuffer(raw, dtype=self._index_dtype).reshape(-1, 2)]
        self._indexes[shard] = index
        while len(self._indexes) > MAX_CACHED_INDEXES:
            self._indexes.popitem(last=False)
        return index

    def _decode(self, data) -> np.ndarray:
        chunk = np.empty(self.inner, dtype=self.dtype)
        self._decode_into(data, chunk)
        return chunk

    # ---- reads -------------------------------------------------------------------------------
    def read(self, z0: int, z1: int, out: np.ndarray | None = None) -> np.ndarray:
        """Slices ``[z0, z1)`` (0 <= z0 <= z1 <= shape[0]) as a native-order array: a new one, or
        ``out`` (C-contiguous, shape ``(z1 - z0, *shape[1:])``, dtype ``out_dtype``) filled in place."""
        if not 0 <= z0 <= z1 <= self.shape[0]:
            raise IndexError(f"slices {z0}:{z1} outside 0..{self.shape[0]}")
        if out is None:
            out = np.empty((z1 - z0, *self.shape[1:]), dtype=self.out_dtype)
        elif (out.shape[0] != z1 - z0 or out.shape[1:] != self._plane or out.dtype != self.out_dtype
              or not out.flags.c_contiguous):
            raise ValueError(f"out: {out.shape} {out.dtype} (contiguous: {out.flags.c_contiguous}), expected "
                             f"C-contiguous {(z1 - z0, *self.shape[1:])} {self.out_dtype}")
        self._check_pid()
        with self._lock:
            self._read(z0, z1, out)
        return out

    def _read(self, z0: int, z1: int, out: np.ndarray) -> None:
        step, per_shard, decode_into, shards = self.inner[0], self.shard_slices, self._decode_into, self._open_shards
        # decode straight into ``out`` where a chunk fits; one-slice chunks (the converter's) always do
        direct = self.dtype == self.out_dtype
        per_slice = direct and step == 1
        for shard in range(z0 // per_shard, -(-z1 // per_shard) if z1 > z0 else 0):
            base = shard * per_shard
            lo, hi = max(z0, base), min(z1, base + per_shard)
            entry = shards.get(shard) or self._shard(shard)
            if entry is None:
                out[lo - z0:hi - z0] = self.fill
                continue
            fd, index = entry
            first, last = (lo - base) // step, (hi - 1 - base) // step + 1    # inner chunks needed
            entries = index[first:last]
            start, end, stored = EMPTY, 0, 0
            for o, n in entries:
                if o != EMPTY:
                    start, end, stored = min(start, o), max(end, o + n), stored + n
            block = None
            if stored and end - start <= 2 * stored + 65536:
                block = memoryview(self._pread(fd, end - start, start))   # one read for adjacent chunks
            if per_slice:
                for i, (o, n) in enumerate(entries, lo - z0):
                    if o == EMPTY and n == EMPTY:
                        out[i] = self.fill
                    else:
                        decode_into(block[o - start:o - start + n] if block is not None else self._pread(fd, n, o),
                                    out[i])
                continue
            for c, (o, n) in enumerate(entries, first):
                a, b = max(lo, base + c * step), min(hi, base + (c + 1) * step)
                if o == EMPTY and n == EMPTY:
                    out[a - z0:b - z0] = self.fill
                    continue
                data = block[o - start:o - start + n] if block is not None else self._pread(fd, n, o)
                if direct and b - a == step:              # the whole chunk is wanted
                    decode_into(data, out[a - z0:b - z0])
                else:
                    out[a - z0:b - z0] = self._decode(data)[a - base - c * step:b - base - c * step]

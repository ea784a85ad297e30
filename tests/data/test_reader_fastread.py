"""raysys.data.fastread: plain-file reads of local stores equal zarr's reads, with fallback."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import zarr
import zarr.storage
from zarr.codecs import BloscCodec, BytesCodec, ShardingCodec, ZstdCodec

from raysys.data import SliceDataset, fastread, layout, open_store


@pytest.fixture(scope="module")
def stores(tiny_store, phantom_dir, tmp_path_factory) -> dict[str, str]:
    """The default store (8-slice shards) plus unsharded and 4-slice-shard float16 conversions."""
    from data_prep.convert import convert

    out = {"default": tiny_store}
    for shard_slices, dtype in ((1, "float32"), (4, "float16")):
        url = str(tmp_path_factory.mktemp("fastread") / f"shard{shard_slices}.zarr")
        convert(str(phantom_dir), url, size=(64, 64), folds=4, seed=0, dtype=dtype,
                shard_slices=shard_slices, progress=False)
        out[f"shard{shard_slices}"] = url
    return out


def slice_arrays(url: str) -> list[str]:
    store = open_store(url)
    names = [f"{layout.IMAGES}/{m}" for m in store.modalities] + [layout.MASK]
    return names + [n for n in (layout.LABELS, layout.TISSUE) if n in store._root]


def ranges(total: int, period: int) -> list[tuple[int, int]]:
    """Every range of up to 2 shards' length (plus a few long ones) starting anywhere."""
    out = [(z0, min(total, z0 + n)) for z0 in range(total) for n in range(0, 2 * period + 2)]
    return out + [(0, total), (1, total - 1), (total - 1, total), (total, total)]


def check_array(url: str, name: str) -> None:
    array = open_store(url).array(name)
    reader = fastread.open_array(url, name)
    assert reader is not None, f"{name} of {url}: fast path refused a converter-written array"
    full = array[...]
    period = array.metadata.chunk_grid.chunk_shape[0]
    assert reader.out_dtype == full.dtype
    for z0, z1 in ranges(full.shape[0], period):
        got = reader.read(z0, z1)
        assert got.dtype == full.dtype and np.array_equal(got, full[z0:z1]), (name, z0, z1)
    rng = np.random.default_rng(0)
    for _ in range(20):   # zarr's own range reads, not only slices of the full read
        z0 = int(rng.integers(full.shape[0]))
        z1 = int(rng.integers(z0, full.shape[0] + 1))
        assert np.array_equal(reader.read(z0, z1), array[z0:z1])


@pytest.mark.parametrize("which", ["default", "shard1", "shard4"])
def test_fastread_equals_zarr(stores, which):
    url = stores[which]
    store = open_store(url)
    assert not store.availability.all()      # some modalities missing: fill-value chunks are read
    for name in slice_arrays(url):
        check_array(url, name)
    assert fastread.open_array("file://" + url, layout.MASK) is not None


def test_missing_shard_file_and_chunk(stores, tmp_path):
    url = str(tmp_path / "copy.zarr")
    shutil.copytree(stores["shard4"], url)
    name = f"{layout.IMAGES}/t1"
    folder = os.path.join(url, name, "c")
    shards = sorted(os.listdir(folder), key=int)
    shutil.rmtree(os.path.join(folder, shards[len(shards) // 2]))   # a whole shard file gone
    check_array(url, name)
    full = open_store(url).array(name)[...]
    assert (full == 0).all(axis=(1, 2)).any()


@pytest.mark.parametrize("location", ["start", "end"])
def test_handmade_arrays(tmp_path, location):
    """Arrays written by zarr itself: index at the start or end, partial last shard, big-endian,
    NaN fill, multi-slice inner chunks, empty chunks skipped."""
    url = str(tmp_path / "store")
    root = zarr.open_group(url, mode="w")
    rng = np.random.default_rng(1)
    data = rng.normal(size=(23, 5, 6)).astype(np.float32)
    data[8:12] = np.nan
    sharding = ShardingCodec(chunk_shape=(2, 5, 6), codecs=[BytesCodec(endian="big"), ZstdCodec(level=1)],
                             index_location=location)
    array = zarr.create(store=zarr.storage.LocalStore(url), path="a", shape=data.shape, dtype="float32",
                        chunk_shape=(6, 5, 6), codecs=[sharding], fill_value=np.nan, zarr_format=3)
    array[...] = data
    plain = root.create_array("b", shape=(9, 4, 4), chunks=(2, 4, 4), dtype="uint16",
                              compressors=BloscCodec(cname="lz4"), fill_value=7)
    plain[1:5] = 3
    for name in ("a", "b"):
        reader = fastread.open_array(url, name)
        assert reader is not None
        full = zarr.open_array(url, path=name, mode="r")[...]
        for z0 in range(full.shape[0] + 1):
            for z1 in range(z0, full.shape[0] + 1):
                np.testing.assert_array_equal(reader.read(z0, z1), full[z0:z1])


def test_unsupported_falls_back(tmp_path):
    url = str(tmp_path / "store")
    root = zarr.open_group(url, mode="w")
    root.create_array("t", shape=(4, 3, 3), chunks=(1, 3, 3), dtype="float32",
                      filters=[zarr.codecs.TransposeCodec(order=(0, 2, 1))])
    root.create_array("part", shape=(4, 6, 6), chunks=(1, 3, 3), dtype="float32")
    assert fastread.open_array(url, "t") is None          # unknown codec
    assert fastread.open_array(url, "part") is None       # chunks not spanning whole slices
    assert fastread.open_array(url, "nothing") is None
    assert fastread.open_array("memory://x", "t") is None
    assert fastread.open_array("s3://bucket/x", "t") is None


def test_dataset_fast_equals_zarr(stores):
    for url in stores.values():
        fast = SliceDataset(url, split="all", preload=False, hide_prob=0.3, seed=2)
        slow = SliceDataset(url, split="all", preload=False, hide_prob=0.3, seed=2, fast=False)
        fast.load()
        assert set(fast._fast) == set(fast._array_names) and not slow.load()._fast
        for index in list(range(0, len(fast), 7)) + [len(fast) - 1]:
            a, b = fast[index], slow[index]
            assert a.keys() == b.keys()
            for key in a:
                assert a[key].dtype == b[key].dtype and bool((a[key] == b[key]).all()), (url, index, key)


def test_dataset_memory_store_uses_zarr(phantom_dir):
    from data_prep.convert import convert

    url = "memory://fastread-test.zarr"
    convert(str(phantom_dir), url, size=(32, 32), folds=4, seed=0, progress=False)
    dataset = SliceDataset(url, split="all", preload=False).load()
    assert dataset._fast == {}
    item = dataset[3]
    store = open_store(url)
    g = int(item["slice"])
    np.testing.assert_array_equal(item["mask"].numpy(), store.array(layout.MASK)[g])


def test_fork_pickle_and_threads(stores):
    import pickle
    from concurrent.futures import ThreadPoolExecutor

    url = stores["shard4"]
    name = f"{layout.IMAGES}/t2"
    full = open_store(url).array(name)[...]
    reader = fastread.open_array(url, name)
    fastread.MAX_OPEN_FILES, saved = 3, fastread.MAX_OPEN_FILES   # force evictions under threads
    try:
        spans = [(z, min(full.shape[0], z + 5)) for z in range(0, full.shape[0], 3)] * 4
        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(lambda r: reader.read(*r), spans))
        assert all(np.array_equal(g, full[a:b]) for g, (a, b) in zip(got, spans))
    finally:
        fastread.MAX_OPEN_FILES = saved
    copy = pickle.loads(pickle.dumps(reader))
    assert np.array_equal(copy.read(10, 20), full[10:20])
    pid = os.fork()
    if pid == 0:   # child: inherited descriptors are replaced, reads still correct
        ok = np.array_equal(reader.read(0, full.shape[0]), full)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert np.array_equal(reader.read(0, full.shape[0]), full)


@pytest.mark.parametrize("which", ["default", "shard1", "shard4"])
def test_read_into_out(stores, which):
    """``read(z0, z1, out=...)`` fills the caller's array in place (float16 stores included) and
    refuses an array of another shape, dtype or layout."""
    url = stores[which]
    name = f"{layout.IMAGES}/t1"
    full = open_store(url).array(name)[...]
    reader = fastread.open_array(url, name)
    for z0, z1 in ((0, 3), (5, 8), (7, 10), (full.shape[0] - 3, full.shape[0])):
        out = np.full((z1 - z0, *full.shape[1:]), 99, dtype=reader.out_dtype)
        assert reader.read(z0, z1, out) is out
        assert np.array_equal(out, full[z0:z1]), (z0, z1)
    with pytest.raises(ValueError, match="out"):
        reader.read(0, 3, np.empty((2, *full.shape[1:]), dtype=reader.out_dtype))
    with pytest.raises(ValueError, match="out"):
        reader.read(0, 3, np.empty((3, *full.shape[1:]), dtype=np.float64))
    with pytest.raises(ValueError, match="out"):
        reader.read(0, 3, np.empty((3, *full.shape[1:][::-1]), dtype=reader.out_dtype).transpose(0, 2, 1))


def test_corrupt_chunk_is_refused(stores, tmp_path):
    """A chunk whose Blosc header promises another size is refused (never a half-filled slice)."""
    url = str(tmp_path / "corrupt.zarr")
    shutil.copytree(stores["default"], url)
    name = f"{layout.IMAGES}/t1"
    reader = fastread.open_array(url, name)
    shard_file = os.path.join(url, name, "c", "0", "0", "0")
    fd = os.open(shard_file, os.O_RDONLY)
    index = reader._index(0, shard_file, fd)
    os.close(fd)
    offset, _ = next((o, n) for o, n in index if o != fastread.EMPTY)
    with open(shard_file, "r+b") as handle:     # the uncompressed-size field of the Blosc header
        handle.seek(offset + 4)
        handle.write((12345).to_bytes(4, "little"))
    with pytest.raises(ValueError, match="Blosc chunk"):
        fastread.open_array(url, name).read(0, reader.shard_slices)

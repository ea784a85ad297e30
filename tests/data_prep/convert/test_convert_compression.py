"""``--compression lz4|zstd|none``: every choice holds exactly the same slices, is read by the fast
reader, and is encoded byte for byte like zarr's own chunks and shards; ``none`` has no compressor
at all (just the ``bytes`` codec inside the sharding codec); lz4 is the default."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
import zarr.storage
from convert_helpers import write_subject

from data_prep.convert import ConvertError, assemble, convert
from data_prep.convert.__main__ import main, parser
from data_prep.convert.subject import COMPRESSIONS, DEFAULT_COMPRESSION, array_settings, decode_blob, \
    encode_slices
from raysys.data import fastread, layout

SUBJECTS = [f"s{i:02d}" for i in range(4)]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    for i, subject in enumerate(SUBJECTS):
        modalities = [m for m in ("t1", "t2", "flair") if (subject, m) != ("s01", "flair")]
        write_subject(root, subject, seed=i, modalities=modalities)
    out = tmp_path_factory.mktemp("stores")
    urls = {}
    for compression in COMPRESSIONS:
        urls[compression] = str(out / f"{compression}.zarr")
        report = convert(str(root), urls[compression], size=(24, 20), folds=3, shard_slices=4, progress=False,
                         compression=compression)
        assert report.ok
    return root, urls


def _arrays(group: zarr.Group) -> dict[str, zarr.Array]:
    return {path: array for path, array in _walk(group)}


def _walk(group: zarr.Group, prefix: str = ""):
    for name, member in group.members():
        if isinstance(member, zarr.Group):
            yield from _walk(member, f"{prefix}{name}/")
        else:
            yield f"{prefix}{name}", member


def test_every_compression_stores_the_same_slices(stores):
    _, urls = stores
    assert set(COMPRESSIONS) == {"lz4", "zstd", "none"} and DEFAULT_COMPRESSION == "lz4"
    reference = _arrays(zarr.open_group(urls["lz4"], mode="r"))
    assert layout.MASK in reference
    for compression in ("zstd", "none"):
        other = _arrays(zarr.open_group(urls[compression], mode="r"))
        assert sorted(other) == sorted(reference), compression
        for name, array in reference.items():
            a, b = array[...], other[name][...]
            assert a.dtype == b.dtype and np.array_equal(a, b), (compression, name)
            for k in range(array.shape[0]) if array.ndim == 3 else ():
                assert np.array_equal(array[k], other[name][k]), (compression, name, k)
    for compression in COMPRESSIONS:
        attrs = dict(zarr.open_group(urls[compression], mode="r").attrs)
        assert attrs["compression"] == compression and attrs["complete"]
        # absent for zstd only: zstd stores started before the option existed still resume
        assert attrs["arguments"].get("compression") == (None if compression == "zstd" else compression)


def test_lz4_store_uses_blosc_lz4_without_shuffle(stores):
    _, urls = stores
    group = zarr.open_group(urls["lz4"], mode="r")
    for name in [f"{layout.IMAGES}/{m}" for m in group.attrs["modalities"]] + [layout.MASK, layout.TISSUE]:
        (codec,) = group[name].compressors
        config = codec.to_dict()["configuration"]
        assert codec.to_dict()["name"] == "blosc" and config["cname"] == "lz4", name
        assert config["shuffle"] == "noshuffle", name


def test_uncompressed_store_has_no_compressor(stores):
    _, urls = stores
    for name, array in _arrays(zarr.open_group(urls["none"], mode="r")).items():
        assert array.compressors == (), name
        codecs = array.metadata.codecs
        inner = codecs[0].codecs if codecs[0].to_dict()["name"] == "sharding_indexed" else codecs
        assert [c.to_dict()["name"] for c in inner] == ["bytes"], name
    images = zarr.open_group(urls["zstd"], mode="r")["images/t1"]
    assert images.compressors != ()


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_fast_reader_reads_every_compression(stores, compression):
    _, urls = stores
    group = zarr.open_group(urls[compression], mode="r")
    names = [f"{layout.IMAGES}/{m}" for m in group.attrs["modalities"]] + [layout.MASK, layout.TISSUE]
    for name in names:
        reader = fastread.open_array(urls[compression], name)
        assert reader is not None, name
        expected = group[name][...]
        got = reader.read(0, expected.shape[0])
        assert got.dtype == expected.dtype and np.array_equal(got, expected), name
        for k in range(expected.shape[0]):
            assert np.array_equal(reader.read(k, k + 1)[0], expected[k]), (name, k)


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("name,dtype", [("images/t1", "float32"), ("images/t2", "float16"),
                                        (layout.MASK, "float32"), (layout.LABELS, "float32")])
def test_encode_slices_matches_zarr_chunks(name, dtype, compression):
    size = (24, 20)
    settings = array_settings(name, size, dtype, compression)
    assert (settings["compressors"] is None) == (compression == "none")
    rng = np.random.default_rng(1)
    data = (rng.random((5, *size)) * 3).astype(settings["dtype"])
    data[2] = 0
    chunks: dict = {}
    reference = zarr.create_array(zarr.storage.MemoryStore(store_dict=chunks), shape=data.shape, **settings)
    reference[...] = data
    expected = [chunks.get(reference.metadata.encode_chunk_key((k, 0, 0))) for k in range(5)]
    staged = decode_blob(encode_slices(name, data, size, dtype, compression))
    assert staged[2] is None and expected[2] is None
    assert staged == [None if e is None else e.to_bytes() for e in expected]


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_shards_are_byte_identical_to_zarrs(tmp_path, compression):
    size, dtype, name = (8, 6), "float32", "images/t1"
    rng = np.random.default_rng(3)
    data = rng.random((6, *size)).astype(dtype)
    data[1] = 0
    ours = str(tmp_path / "ours.zarr")
    root = zarr.open_group(layout.zarr_store(ours), mode="w")
    store = layout.zarr_store(ours)
    from data_prep.convert.storeio import put_many
    from data_prep.convert.subject import staged_key
    put_many(store, [(staged_key("a", name), encode_slices(name, data, size, dtype, compression))])
    plan = assemble.Plan(ours, ("a",), (0, 6), (name,))
    assemble.create_arrays(root, plan, size, dtype, 4, compression)
    for first, stop in assemble.blocks(6, 4, tasks_hint=2):
        assemble.assemble_block(plan, first, stop)
    theirs = zarr.create_array(str(tmp_path / "theirs.zarr"), shape=data.shape, shards=(4, *size),
                               **array_settings(name, size, dtype, compression))
    theirs[...] = data
    for shard in ("0", "1"):
        mine = (tmp_path / "ours.zarr" / "images" / "t1" / "c" / shard / "0" / "0").read_bytes()
        zarrs = (tmp_path / "theirs.zarr" / "c" / shard / "0" / "0").read_bytes()
        assert mine == zarrs, shard


def test_resume_refuses_another_compression(stores):
    root, urls = stores
    with pytest.raises(ConvertError, match="compression"):
        convert(str(root), urls["zstd"], size=(24, 20), folds=3, shard_slices=4, progress=False,
                compression="none")
    with pytest.raises(ConvertError, match="compression"):
        convert(str(root), urls["lz4"], size=(24, 20), folds=3, shard_slices=4, progress=False,
                compression="zstd")
    with pytest.raises(ConvertError, match="--compression"):
        convert(str(root), urls["zstd"], compression="brotli", progress=False)


def test_cli_flag_is_accepted_and_documented(stores, tmp_path, capsys):
    root, _ = stores
    assert "--compression" in parser().format_help()
    assert parser().parse_args(["--input", "x", "--output", "y"]).compression == "lz4"
    out = str(tmp_path / "cli.zarr")
    assert main(["--input", str(root), "--output", out, "--size", "24", "20", "--folds", "3", "--quiet",
                 "--compression", "none"]) == 0
    assert dict(zarr.open_group(out, mode="r").attrs)["compression"] == "none"
    with pytest.raises(SystemExit):
        parser().parse_args(["--input", "x", "--output", "y", "--compression", "brotli"])

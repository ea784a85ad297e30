"""The converter's fast paths give exactly what the plain library calls give.

- in-plane resizing == ``scipy.ndimage.zoom`` of the zero-padded slice (bilinear / nearest);
- ``encode_slices`` (numcodecs directly) == the chunk bytes zarr itself writes;
- shards framed by ``assemble_block`` read back with zarr, including empty chunks and a last
  shard that extends past the array.
"""

from __future__ import annotations

import numpy as np
import pytest
import zarr
import zarr.storage
from scipy import ndimage

from data_prep.convert import assemble, geometry
from data_prep.convert.subject import array_settings, decode_blob, encode_slices, staged_key
from raysys.data import layout


@pytest.mark.parametrize("shape,size", [((3, 117, 99), (192, 160)), ((2, 40, 48), (64, 64)),
                                        ((2, 30, 20), (16, 24)), ((2, 48, 40), (48, 40))])
def test_fit_in_plane_equals_scipy_zoom_of_the_padded_slice(shape, size):
    rng = np.random.default_rng(0)
    stack = rng.random(shape).astype(np.float32)
    labels = rng.integers(0, 4, shape).astype(np.uint8)
    padded_h, padded_w = geometry.padded_plane(shape[1], shape[2], size)
    top, left = (padded_h - shape[1]) // 2, (padded_w - shape[2]) // 2
    zoom = (size[0] / padded_h, size[1] / padded_w)
    for data, order in ((stack, 1), (labels, 0)):
        padded = np.zeros((shape[0], padded_h, padded_w), dtype=data.dtype)
        padded[:, top:top + shape[1], left:left + shape[2]] = data
        expected = np.stack([ndimage.zoom(p, zoom, order=order, grid_mode=False) for p in padded])
        got = geometry.fit_in_plane(data, size, order=order)
        assert got.shape == (shape[0], *size)
        if order == 0:
            np.testing.assert_array_equal(got, expected)
        else:
            np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("name,dtype", [("images/t1", "float32"), ("images/t2", "float16"),
                                        (layout.MASK, "float32"), (layout.LABELS, "float32")])
def test_encode_slices_matches_zarr_chunks(name, dtype):
    size = (24, 20)
    settings = array_settings(name, size, dtype)
    rng = np.random.default_rng(1)
    data = (rng.random((5, *size)) * 3).astype(settings["dtype"])
    data[2] = 0                                   # an all-zero slice is not stored
    chunks: dict = {}
    reference = zarr.create_array(zarr.storage.MemoryStore(store_dict=chunks), shape=data.shape, **settings)
    reference[...] = data
    expected = [chunks.get(reference.metadata.encode_chunk_key((k, 0, 0))) for k in range(5)]
    staged = decode_blob(encode_slices(name, data, size, dtype))
    assert staged[2] is None and expected[2] is None
    assert staged == [None if e is None else e.to_bytes() for e in expected]


@pytest.mark.parametrize("shard_slices", [1, 4])
def test_assembled_shards_read_back_with_zarr(tmp_path, shard_slices):
    size, dtype = (8, 6), "float32"
    url = str(tmp_path / "s.zarr")
    root = zarr.open_group(layout.zarr_store(url), mode="w")
    rng = np.random.default_rng(2)
    # three subjects of 3, 6 and 2 slices: they straddle 4-slice shards; b lacks the modality,
    # and c has an all-zero slice; 11 slices -> the last 4-slice shard extends past the array
    counts = {"a": 3, "b": 6, "c": 2}
    data = {s: rng.random((n, *size)).astype(dtype) for s, n in counts.items()}
    data["c"][1] = 0
    store = layout.zarr_store(url)
    name = "images/t1"
    for subject in ("a", "c"):
        blob = encode_slices(name, data[subject], size, dtype)
        zarr.core.sync.sync(store.set(staged_key(subject, name),
                                      zarr.core.buffer.default_buffer_prototype().buffer.from_bytes(blob)))
    start = (0, 3, 9, 11)
    plan = assemble.Plan(url, ("a", "b", "c"), start, (name,))
    assemble.create_arrays(root, plan, size, dtype, shard_slices)
    for first, stop in assemble.blocks(11, shard_slices, tasks_hint=2):
        assemble.assemble_block(plan, first, stop)
    stored = zarr.open_group(url, mode="r")[name][...]
    np.testing.assert_array_equal(stored[0:3], data["a"])
    assert not stored[3:9].any()
    np.testing.assert_array_equal(stored[9:11], data["c"])
    shards = sorted(p.name for p in (tmp_path / "s.zarr" / "images" / "t1" / "c").iterdir())
    # b's slices 3..8 and c's zero slice are never written
    assert shards == (["0", "1", "2", "9"] if shard_slices == 1 else ["0", "2"])


def test_assembly_refuses_a_staged_array_that_is_missing(tmp_path):
    url = str(tmp_path / "s.zarr")
    root = zarr.open_group(layout.zarr_store(url), mode="w")
    plan = assemble.Plan(url, ("a",), (0, 2), ("images/t1",), staged=(("images/t1",),))
    assemble.create_arrays(root, plan, (8, 8), "float32", 4)
    with pytest.raises(RuntimeError, match="staged images/t1 of a is missing"):
        assemble.assemble_block(plan, 0, 2)


@pytest.mark.parametrize("seed", range(4))
def test_fill_holes_equals_scipy(seed):
    rng = np.random.default_rng(seed)
    mask = ndimage.binary_opening(rng.random((23, 19, 17)) > 0.45 - 0.05 * seed)
    mask[5:15, 5:12, 4:10] = True
    mask[8:11, 7:9, 6:8] = False                 # a hole inside a solid block
    expected = ndimage.binary_fill_holes(mask)
    assert expected.sum() > mask.sum()
    for layout in (mask, np.asfortranarray(mask)):
        np.testing.assert_array_equal(geometry.fill_holes(layout), expected)
    np.testing.assert_array_equal(geometry.fill_holes(np.ones((3, 4, 5), bool)), np.ones((3, 4, 5), bool))
    np.testing.assert_array_equal(geometry.fill_holes(np.zeros((3, 4, 5), bool)), np.zeros((3, 4, 5), bool))


def test_estimated_mask_equals_the_plain_scipy_recipe():
    """Cropping to the bounding box and the fast hole filling change nothing: the mask equals the
    recipe on the whole volume (Otsu on the same samples; largest component; binary_fill_holes)."""
    from convert_helpers import image, tissue_map

    tissue = tissue_map(2)
    images = {m: np.asfortranarray(image(tissue, m, 2)) for m in ("t1", "t2")}
    images["t2"][3:6, 3:6, 3:6] = images["t2"].max()          # a separate bright blob: not the brain
    got = geometry.brain_mask(images, tissue=None)
    mixed = {"t1": images["t1"], "t2": np.ascontiguousarray(images["t2"])}     # F- and C-ordered
    np.testing.assert_array_equal(geometry.brain_mask(mixed, tissue=None), got)
    mean = sum(v * np.float32(1.0 / (max(float(np.percentile(geometry._sample(v)[geometry._sample(v) > 0], 99)),
                                              1e-12) * 2)) for v in images.values())
    rough = mean > geometry.otsu_threshold(geometry._sample(mean))
    labelled, count = ndimage.label(rough)
    sizes = ndimage.sum_labels(rough, labelled, index=np.arange(1, count + 1))
    expected = ndimage.binary_fill_holes(labelled == 1 + int(np.argmax(sizes)))
    assert count > 1
    np.testing.assert_array_equal(got, expected)
    assert geometry.bounding_box(np.zeros((3, 3, 3), bool)) is None


@pytest.mark.parametrize("size", [(64, 64), (48, 40), (192, 160)])
def test_fit_in_plane_of_a_window_equals_the_zero_filled_plane(size):
    """Resizing only the non-zero window (flipped axial view included) == resizing whole slices."""
    rng = np.random.default_rng(5)
    full = np.zeros((3, 50, 41), dtype=np.float32)
    full[:, 7:31, 12:37] = rng.random((3, 24, 25))
    expected = geometry.fit_in_plane(full, size, order=1)
    got = geometry.fit_in_plane(full[:, 7:31, 12:37], size, order=1, plane=(50, 41), offset=(7, 12))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    volume = np.asfortranarray(np.transpose(full[:, ::-1, :], (2, 1, 0)))     # [X, Y, Z] whose axial view is full
    np.testing.assert_array_equal(geometry.axial_view(volume), full)
    window = volume[12:37, 50 - 31:50 - 7, :]
    got = geometry.fit_in_plane(geometry.axial_view(window), size, order=1, plane=(50, 41), offset=(7, 12))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    labels = np.zeros((3, 50, 41), dtype=np.uint8)
    labels[:, 7:31, 12:37] = rng.integers(1, 4, (3, 24, 25))
    expected = geometry.fit_in_plane(labels, size, order=0)
    got = geometry.fit_in_plane(labels[:, 7:31, 12:37], size, order=0, plane=(50, 41), offset=(7, 12))
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="outside the plane"):
        geometry.fit_in_plane(full[:, 7:31, 12:37], size, order=1, plane=(50, 41), offset=(30, 12))

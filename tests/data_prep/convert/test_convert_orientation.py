"""One image, however it lies on disk, gives one store, bit for bit.

The real MNI152 2009 T1 that nilearn ships (uint8 on disk; every 2nd voxel: the 2 mm grid) is
written RAS and flipped left-right (LAS, affine adjusted), with its axes in NIfTI order or
permuted (then the reoriented array is C-ordered instead of nibabel's Fortran order), as
``.nii`` and ``.nii.gz``, as uint8 and as float32 (float32 is used without a copy, so the
reoriented view reaches the converter as it is), with and without a tissue map. Every store
must equal the RAS one byte for byte (arrays and attrs, apart from the input paths and file
hashes). Before the converter fixed one memory layout, the C-ordered and float32 LAS copies
changed the estimated brain mask (the Otsu sample was taken along another axis) and the
z-score mean (summed in another order).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import zarr

from data_prep.convert import convert, geometry, normalise

LAYOUTS = ("RAS", "LAS", "RAS-permuted", "LAS-permuted")
DTYPES = ("uint8", "float32")
SUFFIXES = (".nii", ".nii.gz")
SOURCE_ONLY_ATTRS = ("arguments", "fingerprint", "source_sha256")
"""Attrs naming the input files (paths, their hashes): the only ones allowed to differ."""


def _mni152() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """({"t1", "t2", "tissue"}: uint8 [X, Y, Z]) on the 2 mm MNI grid, and its (RAS) affine.

    t1: the template's voxels; t2: its contrast inverted inside the head (a second modality
    with the same anatomy); tissue: 1 CSF, 2 GM, 3 WM from nilearn's probability maps."""
    from nilearn import datasets

    image = nib.load(str(datasets.MNI152_FILE_PATH))
    t1 = np.asarray(image.dataobj)[::2, ::2, ::2]
    affine = image.affine @ np.diag([2.0, 2.0, 2.0, 1.0])
    gm = np.asarray(datasets.load_mni152_gm_template(resolution=2).dataobj, dtype=np.float32)
    wm = np.asarray(datasets.load_mni152_wm_template(resolution=2).dataobj, dtype=np.float32)
    brain = np.asarray(datasets.load_mni152_brain_mask(resolution=2).dataobj) > 0.5
    assert t1.dtype == np.uint8 and t1.shape == gm.shape == brain.shape
    csf = np.clip(1 - gm - wm, 0, 1)
    tissue = np.where(brain, 1 + np.argmax(np.stack([csf, gm, wm]), axis=0), 0).astype(np.uint8)
    t2 = np.where(t1 > 0, 255 - t1, 0).astype(np.uint8)
    return {"t1": t1, "t2": t2, "tissue": tissue}, affine


def on_disk(data: np.ndarray, affine: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """(voxels, affine) of the same image stored in ``layout``; world coordinates are unchanged."""
    affine = affine.copy()
    if layout.startswith("LAS"):
        affine[:3, 3] += affine[:3, 0] * (data.shape[0] - 1)
        affine[:3, 0] *= -1
        data = data[::-1]
    if layout.endswith("permuted"):              # voxel axes (k, j, i): reoriented, a C-ordered array
        data, affine[:, :3] = data.transpose(2, 1, 0), affine[:, [2, 1, 0]]
    return data, affine


def write_subject(folder: Path, volumes: dict[str, np.ndarray], affine: np.ndarray, layouts: dict[str, str],
                  dtype: str, suffix: str) -> None:
    folder.mkdir(parents=True)
    for name, data in volumes.items():
        voxels, voxel_affine = on_disk(data, affine, layouts[name])
        on_disk_dtype = "uint8" if name == "tissue" else dtype
        nib.save(nib.Nifti1Image(np.ascontiguousarray(voxels).astype(on_disk_dtype), voxel_affine),
                 str(folder / f"mni_{name}{suffix}"))


def store_content(url: str) -> tuple[dict[str, np.ndarray], dict]:
    """Every array of the store and its attrs without the source-only ones."""
    root = zarr.open_group(url, mode="r")
    arrays = {name: node[...] for name, node in root.members(max_depth=None) if isinstance(node, zarr.Array)}
    attrs = {k: v for k, v in root.attrs.asdict().items() if k not in SOURCE_ONLY_ATTRS}
    return arrays, attrs


def assert_bit_identical(got: tuple[dict, dict], expected: tuple[dict, dict], variant: str) -> None:
    arrays, attrs = got
    assert sorted(arrays) == sorted(expected[0]), variant
    problems = []
    for name, data in arrays.items():
        reference = expected[0][name]
        assert data.dtype == reference.dtype and data.shape == reference.shape, (variant, name)
        if data.tobytes() != reference.tobytes():      # bits: 0.0 and -0.0 differ too
            differ = data != reference
            worst = float(np.max(np.abs(data.astype(np.float64) - reference))) if differ.any() else 0.0
            problems.append(f"{name} differs in {int(np.count_nonzero(differ))} values (largest {worst:.3g})")
    problems += [f"attr {key} differs" for key in sorted(set(attrs) | set(expected[1]))
                 if attrs.get(key) != expected[1].get(key)]
    if problems:
        pytest.fail(f"{variant} vs the RAS store: " + "; ".join(problems))


@pytest.fixture(scope="module")
def mni152():
    return _mni152()


@pytest.mark.slow
@pytest.mark.parametrize("files", [("t1",), ("t1", "t2"), ("t1", "t2", "tissue")],
                         ids=["t1-estimated-mask", "t1-t2-estimated-mask", "t1-t2-tissue-map"])
def test_every_orientation_suffix_dtype_and_memory_order_gives_the_same_store(mni152, tmp_path, files):
    volumes, affine = mni152
    volumes = {name: volumes[name] for name in files}
    variants = {f"{layout} {dtype} {suffix}": ({name: layout for name in volumes}, dtype, suffix)
                for layout, dtype, suffix in itertools.product(LAYOUTS, DTYPES, SUFFIXES)}
    # one subject whose files lie in different layouts (the mask sums F- and C-ordered volumes)
    if len(volumes) > 1:
        mixed = dict(zip(volumes, ("RAS", "LAS-permuted", "LAS")))
        variants["mixed float32 .nii.gz"] = (mixed, "float32", ".nii.gz")
    reference = None
    for i, (variant, (layouts, dtype, suffix)) in enumerate(variants.items()):
        cohort = tmp_path / f"cohort{i}"
        write_subject(cohort / "mni", volumes, affine, layouts, dtype, suffix)
        url = str(tmp_path / f"store{i}.zarr")
        convert(str(cohort), url, size=(32, 32), folds=3, strict=True, progress=False)
        content = store_content(url)
        if reference is None:
            reference = content
            assert set(content[0]) >= {f"images/{m}" for m in files if m != "tissue"} | {"mask"}
            assert ("tissue" in content[0]) == ("tissue" in files)
        else:
            assert_bit_identical(content, reference, variant)


def test_the_estimated_mask_and_zscore_ignore_memory_layout(mni152):
    """The layout-sensitive steps on their own: the same volume in Fortran order, C order and as
    a flipped view gives the same mask and the same statistics (292 mask voxels differed)."""
    volumes, _ = mni152
    t1, t2 = (volumes[m].astype(np.float32) for m in ("t1", "t2"))

    def layouts(volume):
        return {"F": np.asfortranarray(volume), "C": np.ascontiguousarray(volume),
                "flipped view": np.asfortranarray(volume[::-1])[::-1]}

    expected = geometry.brain_mask({"t1": layouts(t1)["F"], "t2": layouts(t2)["F"]}, None)
    statistics = normalise.zscore(layouts(t1)["F"], expected)
    for name_1, a in layouts(t1).items():
        for name_2, b in layouts(t2).items():
            np.testing.assert_array_equal(geometry.brain_mask({"t1": a, "t2": b}, None), expected,
                                          err_msg=f"t1 {name_1}, t2 {name_2}")
        assert np.array_equal(geometry.brain_mask({"t1": a}, None),
                              geometry.brain_mask({"t1": layouts(t1)["F"]}, None)), name_1
        for mask_name, mask in layouts(expected).items():
            assert normalise.zscore(a, mask) == statistics, (name_1, mask_name)


def test_resizing_ignores_memory_layout(mni152):
    """The bilinear resize of one axial stack is the same for its flipped (axial view) and plain copies."""
    volume = np.asfortranarray(mni152[0]["t1"].astype(np.float32))
    view = geometry.axial_view(volume)                          # rows flipped: negative row stride
    expected = geometry.fit_in_plane(view, (40, 36), order=1)
    for copy in (np.ascontiguousarray(view), np.asfortranarray(view)):
        assert geometry.fit_in_plane(copy, (40, 36), order=1).tobytes() == expected.tobytes()

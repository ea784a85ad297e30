"""Model-grid results back on the subject's grid: the inverse of the in-plane resize and of the
RAS reorientation."""

from __future__ import annotations

import nibabel as nib
import numpy as np
from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform
from predict_helpers import subject_files
from scipy import ndimage

from data_prep.convert.geometry import axial_view, fit_in_plane
from data_prep.convert.subject import resize_slab
from raysys.data import open_store
from raysys.predict.native import Reference, to_native
from raysys.predict.preprocess import Preprocessing, prepare_subject
from raysys.registry.format import preprocessing_record


def _again(volume: np.ndarray, prepared, size) -> np.ndarray:
    """The store's geometry applied again to a native volume already in normalised units."""
    slab = slice(int(prepared.keep[0]), int(prepared.keep[-1]) + 1)
    return resize_slab({"x": volume}, {"x": (0.0, 1.0)}, prepared.brain, None, slab, size, "zscore")["images/x"]


def test_back_and_forth_is_exact_without_resizing(tiny_store, phantom_dir):
    """When the padded plane is the model grid (no interpolation), back then forth is the identity."""
    store = open_store(tiny_store)
    record = preprocessing_record(store.attrs)
    subject = store.subjects[0]
    x, y, _ = nib.load(subject_files(phantom_dir, subject)["t1"]).shape
    spec = Preprocessing.from_record({**record, "size": [max(x, y)] * 2})
    prepared = prepare_subject(subject, subject_files(phantom_dir, subject), spec)
    slices = prepared.images[:, 0]
    native = to_native(slices, prepared.keep, prepared.brain, order=1)
    assert native.shape == prepared.brain.shape and not native[~prepared.brain].any()
    outside = np.ones(native.shape[2], bool)
    outside[prepared.keep] = False
    assert outside.any() and not native[:, :, outside].any()
    assert np.array_equal(_again(native, prepared, spec.size), slices)
    labels = (slices > 0.5).astype(np.uint8) * 4
    native_labels = to_native(labels, prepared.keep, prepared.brain, order=0, masked=False)
    assert native_labels.dtype == np.uint8
    assert np.array_equal(fit_in_plane(axial_view(native_labels[:, :, prepared.keep]), spec.size, order=0), labels)


def test_back_and_forth_on_the_stores_grid_reproduces_smooth_slices(tiny_store, phantom_dir):
    store = open_store(tiny_store)
    spec = Preprocessing.from_record(preprocessing_record(store.attrs))
    subject = store.subjects[1]
    prepared = prepare_subject(subject, subject_files(phantom_dir, subject), spec)
    stored = store.volume(1, store.modalities[0])
    smooth = ndimage.gaussian_filter(stored, sigma=(0, 2, 2)) * (stored != 0)   # band-limited, as interpolation assumes
    again = _again(to_native(smooth, prepared.keep, prepared.brain, order=1), prepared, spec.size)
    inner = ndimage.binary_erosion(stored != 0, structure=np.ones((1, 3, 3)))
    error = np.abs(again - smooth)[inner]
    assert error.mean() < 0.02 * np.abs(smooth[inner]).mean() + 0.005 and error.max() < 0.5
    assert not again[stored == 0].any()


def test_on_disk_undoes_the_ras_reorientation(tmp_path):
    rng = np.random.default_rng(0)
    ras = rng.random((5, 6, 7, 2)).astype(np.float32)
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    for codes in ("RAS", "LAS", "RPS", "PIR", "SLA"):
        ornt = ornt_transform(io_orientation(affine), axcodes2ornt(tuple(codes)))
        image = nib.Nifti1Image(ras[..., 0], affine).as_reoriented(ornt)
        nib.save(image, tmp_path / f"{codes}.nii")
        reference = Reference(str(tmp_path / f"{codes}.nii"))
        assert np.array_equal(reference.on_disk(ras[..., 0]), np.asarray(image.dataobj))
        assert reference.on_disk(ras).shape == (*image.shape, 2)
        assert np.array_equal(np.asarray(nib.as_closest_canonical(reference.image(ras[..., 0], np.float32)).dataobj),
                              ras[..., 0])

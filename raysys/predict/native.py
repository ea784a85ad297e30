"""Results on the model's grid -> the subject's own grid and voxel order, written as NIfTI.

The inverse of the preprocessing's geometry, step by step: the in-plane resize
(``data_prep.convert.geometry.unfit_in_plane``), the axial view, the kept slab (slices outside
it are 0), the brain mask, then the RAS reorientation of ``load_volume`` (so the array has the
voxel order of the input file, whatever its orientation on disk). Files are written under a
temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import gzip
import os
import uuid

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

from data_prep.convert.geometry import unfit_in_plane

RAS = axcodes2ornt(("R", "A", "S"))
GZIP_LEVEL = 1
"""nibabel's own default for .nii.gz: the images are float32 noise-free outputs; level 1 is ~4x
faster than 6 for a few % larger files."""


def to_native(slices: np.ndarray, keep: np.ndarray, brain: np.ndarray, order: int,
              masked: bool = True) -> np.ndarray:
    """Slices [Z, (C,) H, W] on the model grid -> RAS volume [X, Y, Z_all(, C)] of ``brain``'s shape.

    ``order`` 1 (bilinear, images) or 0 (nearest, labels); slices outside ``keep`` are 0 and,
    when ``masked``, so is every voxel outside ``brain``.
    """
    x, y, depth = brain.shape
    plane = unfit_in_plane(slices, (y, x), order)                     # [Z, (C,) Y reversed, X]
    plane = plane[..., ::-1, :]                                       # rows run +Y again
    axes = (plane.ndim - 1, plane.ndim - 2, 0, *range(1, plane.ndim - 2))
    volume = np.zeros((x, y, depth, *slices.shape[1:-2]), dtype=plane.dtype)
    volume[:, :, keep[0]:keep[-1] + 1] = np.transpose(plane, axes)
    if masked:
        volume[~brain] = 0
    return volume


class Reference:
    """The input file whose grid the outputs take: its shape, affine, header and orientation."""

    def __init__(self, path: str):
        image = nib.load(path)
        self.path = path
        self.shape = tuple(image.shape)
        self.affine = np.asarray(image.affine, dtype=np.float64)
        self.header = image.header if isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)) else None
        self.klass = type(image) if self.header is not None else nib.Nifti1Image
        # RAS (as the converter reads it) -> the file's own voxel axes
        self.from_ras = ornt_transform(RAS, io_orientation(self.affine))

    def on_disk(self, ras: np.ndarray) -> np.ndarray:
        """A RAS array [X, Y, Z(, C)] in the file's voxel order (and its shape, when it is [X, Y, Z, 1])."""
        data = apply_orientation(ras, self.from_ras)
        if data.ndim == 3 and len(self.shape) == 4:
            data = data[..., None]
        return data

    def image(self, ras: np.ndarray, dtype) -> nib.Nifti1Image:
        """A NIfTI of ``ras`` in this file's voxel order, with its affine and qform/sform codes."""
        data = np.asarray(self.on_disk(ras), dtype=dtype)
        if self.header is None:
            return nib.Nifti1Image(data, self.affine)
        header = self.header.copy()
        image = self.klass(data, self.affine, header)
        image.set_qform(self.header.get_qform(), code=int(self.header["qform_code"]))
        image.set_sform(self.header.get_sform(), code=int(self.header["sform_code"]))
        image.header.set_data_dtype(dtype)
        image.header.set_slope_inter(1.0, 0.0)
        image.header["cal_min"], image.header["cal_max"] = 0, 0
        return image


def write_atomic(image: nib.Nifti1Image, path: str) -> None:
    """Write ``image`` gzip-compressed to ``path`` (a local path), through a temporary name."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(gzip.compress(image.to_bytes(), compresslevel=GZIP_LEVEL, mtime=0))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)

"""Deterministic NIfTI writing and the preview slice of a subject."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    """Write .nii.gz with both qform and sform = ``affine`` (scanner space, mm).

    nibabel's gzip stream carries no timestamp or file name (mtime 0), so equal arrays give
    byte-identical files; the tests check this.
    """
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.to_filename(str(path))


def tumour_slice_index(labels: np.ndarray, brain: np.ndarray) -> int:
    """Axial slice (z) with the most tumour voxels, or the brain's middle slice without a tumour."""
    per_slice = (labels > 0).sum(axis=(0, 1))
    if per_slice.any():
        return int(np.argmax(per_slice))
    zs = np.flatnonzero(brain.any(axis=(0, 1)))
    return int(zs[len(zs) // 2])

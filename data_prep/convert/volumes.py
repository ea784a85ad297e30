"""Load one subject's volumes with nibabel, reoriented to RAS, and validate them.

Every problem raises ``InputError(path, problem)`` whose text is one line naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib

import nibabel as nib
import numpy as np

AFFINE_TOLERANCE = 1e-3
"""Largest allowed absolute difference between two volumes' affines (mm, and unitless rotation)."""


class InputError(Exception):
    """A bad input file: ``str(error)`` is ``"<path>: <problem>"``."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def sha256_of(path: str) -> str:
    """SHA-256 of the file's bytes (recorded in the store so a store names its sources)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as error:
        raise InputError(path, f"unreadable file ({error.strerror or error})") from error
    return digest.hexdigest()


def load_volume(path: str, integer: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Read a 3-D volume in the closest canonical (RAS+) orientation.

    Returns (data [X, Y, Z] float32, or int64 when ``integer``; affine 4x4). A 4-D volume whose
    4th dimension is 1 is squeezed to 3-D; any other 4-D or 2-D volume is rejected.
    """
    try:
        image = nib.load(path)
    except FileNotFoundError as error:
        raise InputError(path, "unreadable file (no such file)") from error
    except PermissionError as error:
        raise InputError(path, "unreadable file (permission denied)") from error
    except nib.filebasedimages.ImageFileError as error:
        raise InputError(path, f"not a NIfTI/MGH image ({error})") from error
    except (gzip.BadGzipFile, zlib.error, EOFError) as error:
        raise InputError(path, f"corrupt or truncated gzip ({error})") from error
    except Exception as error:  # nibabel raises many types for garbage headers
        raise InputError(path, f"not a readable NIfTI/MGH image ({type(error).__name__}: {error})") from error
    shape = tuple(image.shape)
    if len(shape) == 4 and shape[3] == 1:
        image = image.slicer[..., 0]
        shape = shape[:3]
    if len(shape) != 3:
        raise InputError(path, f"{len(shape)}-D volume of shape {shape}; need 3-D "
                               f"(a 4-D volume is accepted only with a 4th dimension of 1)")
    try:
        image = nib.as_closest_canonical(image)
        raw = np.asarray(image.dataobj)
    except (gzip.BadGzipFile, zlib.error, EOFError) as error:
        raise InputError(path, f"corrupt or truncated gzip ({error})") from error
    except Exception as error:
        raise InputError(path, f"cannot read voxel data ({type(error).__name__}: {error})") from error
    if raw.ndim != 3:
        raise InputError(path, f"voxel data has shape {raw.shape}; need 3-D")
    if not np.all(np.isfinite(raw)):
        bad = int(np.size(raw) - np.count_nonzero(np.isfinite(raw)))
        raise InputError(path, f"{bad} NaN/inf voxels")
    if not integer and not np.any(raw):  # an all-zero label map is legal (no tumour)
        raise InputError(path, "all-zero volume")
    if integer:
        data = (raw if raw.dtype.kind in "iub" else np.rint(raw)).astype(np.int64)
    else:
        data = raw.astype(np.float32)
    return data, np.asarray(image.affine, dtype=np.float64)


def load_subject(files: dict[str, str], integer_modalities: set[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Load every file of one subject; all must share shape and affine (``AFFINE_TOLERANCE``).

    Returns ({modality: data [X, Y, Z]}, affine of the first image).
    """
    volumes: dict[str, np.ndarray] = {}
    reference: tuple[str, np.ndarray, np.ndarray] | None = None
    for modality, path in files.items():
        data, affine = load_volume(path, integer=modality in integer_modalities)
        if reference is None:
            reference = (path, data, affine)
        else:
            ref_path, ref_data, ref_affine = reference
            if data.shape != ref_data.shape:
                raise InputError(path, f"shape {data.shape} differs from {ref_data.shape} of {ref_path} "
                                       f"(after reorientation to RAS)")
            difference = float(np.max(np.abs(affine - ref_affine)))
            if difference > AFFINE_TOLERANCE:
                raise InputError(path, f"affine differs from {ref_path} by up to {difference:.4g} "
                                       f"(tolerance {AFFINE_TOLERANCE})")
        volumes[modality] = data
    assert reference is not None, "load_subject needs at least one file"
    return volumes, reference[2]

"""Load one subject's volumes with nibabel, reoriented to RAS, and validate them.

Every problem raises ``InputError(path, problem)`` whose text is one line naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib

import nibabel as nib
import numpy as np
from nibabel.volumeutils import apply_read_scaling

AFFINE_TOLERANCE = 1e-3
"""Largest allowed absolute difference between two volumes' affines (mm, and unitless rotation)."""


GZIP_MAGIC = b"\x1f\x8b"
try:
    from isal import isal_zlib as _inflate_module
except ImportError:  # pragma: no cover - isal is a dependency; zlib is the fallback
    _inflate_module = zlib
_INFLATE_ERRORS = tuple({zlib.error, getattr(_inflate_module, "error", zlib.error)})


def _decompressobj():
    return _inflate_module.decompressobj(wbits=31)


class InputError(Exception):
    """A bad input file: ``str(error)`` is ``"<path>: <problem>"``."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def read_source(path: str) -> tuple[bytes, str]:
    """(the file's bytes, their SHA-256): every input file is read from disk exactly once."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError as error:
        raise InputError(path, "unreadable file (no such file)") from error
    except PermissionError as error:
        raise InputError(path, "unreadable file (permission denied)") from error
    except OSError as error:
        raise InputError(path, f"unreadable file ({error.strerror or error})") from error
    return data, hashlib.sha256(data).hexdigest()


def gunzip(path: str, data: bytes) -> bytes:
    """Inflate a whole .gz file in one call (every member, CRC checked), with ISA-L when installed:
    the inflate is most of a conversion's work, and ISA-L's is ~2x zlib's (bench/data_convert.py)."""
    out = []
    while data:
        inflater = _decompressobj()
        try:
            out.append(inflater.decompress(data))
            if not inflater.eof:
                raise EOFError("compressed file ended before the end-of-stream marker was reached")
        except (EOFError, *_INFLATE_ERRORS) as error:
            raise InputError(path, f"corrupt or truncated gzip ({error})") from error
        data = inflater.unused_data.lstrip(b"\0")       # another member, or padding
        if data and data[:2] != GZIP_MAGIC:
            raise InputError(path, "corrupt gzip (trailing garbage after the last member)")
    return b"".join(out) if len(out) != 1 else out[0]


def _nifti_from_bytes(raw: bytes):
    """A NIfTI-1/2 single-file image whose voxel array is a read-only view of ``raw`` (no copy),
    scaled by the header's slope/intercept as nibabel's proxy would; None for other formats."""
    if len(raw) < 348:
        return None
    klass = None
    for order in ("little", "big"):
        sizeof = int.from_bytes(raw[:4], order)
        if sizeof == 348 and raw[344:348] == b"n+1\0":
            klass = nib.Nifti1Image
        elif sizeof == 540 and raw[4:8] == b"n+2\0":
            klass = nib.Nifti2Image
    if klass is None:      # .hdr/.img pairs, MGH, not an image at all: nibabel decides
        return None
    header = klass.header_class.from_fileobj(io.BytesIO(raw[:klass.header_class.sizeof_hdr]))
    shape, dtype = header.get_data_shape(), header.get_data_dtype()
    offset = int(header.get_data_offset())
    needed = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if offset + needed > len(raw):
        raise ValueError(f"the header describes {needed} data bytes from offset {offset}; "
                         f"the file holds {max(len(raw) - offset, 0)}")
    data = np.ndarray(shape, dtype=dtype, buffer=raw, offset=offset, order="F")
    slope, inter = header.get_slope_inter()
    data = apply_read_scaling(data, slope, inter)
    return klass(data, header.get_best_affine(), header)


def load_volume(path: str, integer: bool = False) -> tuple[np.ndarray, np.ndarray, str]:
    """Read a 3-D volume in the closest canonical (RAS+) orientation and the canonical memory layout.

    Returns (data [X, Y, Z] float32, or uint8 when ``integer`` (labels/tissue: 0..255); affine
    4x4; SHA-256 of the file). The data is always Fortran-ordered with positive strides, as
    nibabel reads a RAS file (then it may be a read-only view of the decoded file, no copy): a
    file stored flipped (LAS, ...) or with its axes permuted reorients to a view with negative
    strides or in C order, and is copied into that one layout here, so every later reduction
    (sample planes, sums, resizing products) runs in one order and the store is bit-identical
    whatever the orientation on disk (tests/data_prep/convert/test_convert_orientation.py). A 4-D volume
    whose 4th dimension is 1 is squeezed to 3-D; any other 4-D or 2-D volume is rejected.
    Single-file NIfTI (.nii, .nii.gz) is decoded from memory; other formats (.mgz, ...) by nib.load.
    """
    data, sha = read_source(path)
    if data[:2] == GZIP_MAGIC:
        data = gunzip(path, data)
    try:
        image = _nifti_from_bytes(data)
    except Exception as error:
        raise InputError(path, f"cannot read voxel data ({type(error).__name__}: {error})") from error
    if image is None:
        image = _load_with_nibabel(path)
    del data
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
    low, high = (raw.min(), raw.max()) if raw.size else (0, 0)   # NaN and inf show in min/max
    if raw.dtype.kind == "f" and not (np.isfinite(low) and np.isfinite(high)):
        bad = int(np.size(raw) - np.count_nonzero(np.isfinite(raw)))
        raise InputError(path, f"{bad} NaN/inf voxels")
    if not integer and low == 0 and high == 0:  # an all-zero label map is legal (no tumour)
        raise InputError(path, "all-zero volume")
    if integer:
        if raw.dtype.kind not in "iub":
            raw, low, high = np.rint(raw), np.rint(low), np.rint(high)
        if low < 0 or high > 255:
            raise InputError(path, f"values outside 0..255 ({low}..{high})")
        data = raw.astype(np.uint8, order="F", copy=False)
    else:
        data = raw.astype(np.float32, order="F", copy=False)
    return data, np.asarray(image.affine, dtype=np.float64), sha


def _load_with_nibabel(path: str):
    try:
        return nib.load(path)
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


def load_subject(files: dict[str, str], integer_modalities: set[str]
                 ) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, str]]:
    """Load every file of one subject; all must share shape and affine (``AFFINE_TOLERANCE``).

    Returns ({modality: data [X, Y, Z]}, affine of the first image, {modality: file SHA-256}).
    """
    volumes: dict[str, np.ndarray] = {}
    sha: dict[str, str] = {}
    reference: tuple[str, np.ndarray, np.ndarray] | None = None
    for modality, path in files.items():
        data, affine, sha[modality] = load_volume(path, integer=modality in integer_modalities)
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
    return volumes, reference[2], sha

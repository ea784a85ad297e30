"""One Dask task: load, check, mask, normalise, resize and stage one subject.

The result is written to ``_staging/<subject>`` inside the output store (one single-chunk
array per volume, so no two tasks ever touch the same object); the group's ``done`` attribute
is written last and is what a resumed conversion trusts.
"""

from __future__ import annotations

import dataclasses
import os
import threading

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from raysys.data import layout

from . import geometry, normalise
from .volumes import InputError, load_subject, sha256_of

CRASH_AFTER_ENV = "RAYSYS_CONVERT_CRASH_AFTER"
"""Testing hook: when set to N, the process exits abruptly (os._exit) after staging N subjects."""
_staged_in_process = 0
_staged_lock = threading.Lock()

COMPRESSOR = BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")


@dataclasses.dataclass(frozen=True)
class SubjectJob:
    """What one task needs: the subject, its files, and the conversion settings."""

    url: str
    subject: str
    files: dict[str, str]          # canonical modality -> path (images, labels, tissue)
    size: tuple[int, int]
    slices: tuple[int, int] | None
    normalise: str
    dtype: str
    strict: bool


@dataclasses.dataclass(frozen=True)
class SubjectResult:
    subject: str
    error: str | None = None       # one line "<path>: <problem>" when the subject failed
    path: str | None = None


def prepare(job: SubjectJob) -> dict:
    """Load and preprocess one subject -> arrays [Z, H, W] and metadata (no store access)."""
    sha = {modality: sha256_of(path) for modality, path in job.files.items()}
    integer = {"labels", "tissue"}
    volumes, affine = load_subject(job.files, integer_modalities=integer)
    images = {m: v for m, v in volumes.items() if m not in integer}
    labels, tissue = volumes.get("labels"), volumes.get("tissue")
    if not images:
        raise InputError(next(iter(job.files.values())), "subject has no image modality")
    first_image = job.files[next(iter(images))]
    for name, volume in (("labels", labels), ("tissue", tissue)):
        if volume is not None and (volume.min() < 0 or volume.max() > 255):
            raise InputError(job.files[name], f"{name} values outside 0..255")
    try:
        mask = geometry.brain_mask(images, tissue)
        params, stats = normalise.fit_subject(images, mask, tissue, job.normalise)
        mask_stack = geometry.axial_stack(mask)
        keep = geometry.choose_slices(mask_stack, job.slices)
    except ValueError as error:
        raise InputError(first_image, str(error)) from error
    # statistics come from the whole volume; only the kept slices are normalised and resized
    mask_kept = mask_stack[keep]
    mask_out = geometry.fit_in_plane(mask_kept.view(np.uint8), job.size, order=0) > 0
    arrays = {}
    for modality, volume in images.items():
        stack = geometry.axial_stack(volume[:, :, keep])
        normalised = normalise.apply(stack, mask_kept, *params[modality], method=job.normalise)
        resized = geometry.fit_in_plane(normalised, job.size, order=1)
        arrays[f"{layout.IMAGES}/{modality}"] = np.where(mask_out, resized, 0).astype(job.dtype)
    arrays[layout.MASK] = mask_out
    for name, volume in ((layout.LABELS, labels), (layout.TISSUE, tissue)):
        if volume is not None:
            arrays[name] = geometry.fit_in_plane(geometry.axial_stack(volume[:, :, keep].astype(np.uint8)),
                                                 job.size, order=0)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    height, width = geometry.padded_plane(images[next(iter(images))].shape[1],
                                          images[next(iter(images))].shape[0], job.size)
    spacing = [float(zooms[2]), float(zooms[1] * height / job.size[0]), float(zooms[0] * width / job.size[1])]
    meta = {"n_slices": int(keep.size), "z": [int(z) for z in keep], "sha256": sha,
            "modalities": sorted(images), "normalisation": stats, "spacing": spacing,
            "has_labels": labels is not None, "has_tissue": tissue is not None}
    return {"arrays": arrays, "meta": meta}


def stage(job: SubjectJob) -> SubjectResult:
    """Prepare one subject and write it to the staging area; errors become a failed result."""
    try:
        prepared = prepare(job)
    except Exception as error:  # noqa: BLE001 - one bad subject must not stop the batch
        if not isinstance(error, InputError):
            path = next(iter(job.files.values()))
            error = InputError(path, f"unexpected {type(error).__name__}: {error}")
        if job.strict:
            raise error
        return SubjectResult(job.subject, error=str(error), path=error.path)
    group = zarr.open_group(layout.zarr_store(job.url), mode="r+").require_group(
        f"{layout.STAGING}/{job.subject}")
    group.attrs.put({"done": False})
    for name, data in prepared["arrays"].items():
        # uncompressed: staging is temporary, and compressing it cost as much as the final write
        array = group.create_array(name, shape=data.shape, dtype=data.dtype, chunks=data.shape,
                                   compressors=None, overwrite=True)
        array[...] = data
    group.attrs.put({"done": True, **prepared["meta"]})
    _maybe_crash()
    return SubjectResult(job.subject)


def _maybe_crash() -> None:
    global _staged_in_process
    limit = os.environ.get(CRASH_AFTER_ENV)
    if not limit:
        return
    with _staged_lock:
        _staged_in_process += 1
        if _staged_in_process >= int(limit):
            os._exit(75)  # simulate a kill: no cleanup, no complete flag

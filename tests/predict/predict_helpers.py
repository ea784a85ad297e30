"""Shared by the prediction tests: tiny model directories with a preprocessing record, and a
phantom subject rewritten in another on-disk orientation or corrupted."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import torch
from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

MODALITIES = ["t1", "t1gd", "t2", "flair"]
# the smallest configurations that build: seconds per subject on one CPU core
TINY = {"mmhvae": {"image_size": 32, "channels": [4, 4], "levels": 2, "disc_layers": 2},
        "disentangle": {"image_size": [16, 16]}}


def fast_record(slices: str = "40:52") -> dict:
    """A preprocessing record of 32x32 slices of a fixed 12-slice range (quick to run a model on)."""
    return {"size": [32, 32], "slices": slices, "normalise": "zscore", "value_range": [-5.0, 5.0],
            "modalities": MODALITIES, "dtype": "float32", "converter_version": "test"}


def save_model(directory: Path, family: str, preprocessing: dict | None, seed: int = 0) -> Path:
    from raysys.models import build_model
    from raysys.registry import save_model_dir

    torch.manual_seed(seed)
    module = build_model(family, "tiny", MODALITIES, **TINY[family])
    training = None if preprocessing is None else {"store_id": "test", "fold": 0, "preprocessing": preprocessing}
    return save_model_dir(directory, family, "tiny", MODALITIES, TINY[family], module.state_dict(), {"test": True},
                          training=training)


def subject_files(root: Path, subject: str) -> dict[str, str]:
    from data_prep.convert.discover import discover

    return discover(root / subject).subjects[subject]


def reoriented_subject(source: Path, subject: str, codes: str, out: Path) -> dict[str, str]:
    """``subject``'s files (images and tissue map) stored with voxel axes ``codes`` (e.g. "LAS",
    "PIR"): the same world-space image, another voxel order and affine."""
    files = {}
    for modality, path in subject_files(source, subject).items():
        image = nib.load(path)
        moved = image.as_reoriented(ornt_transform(io_orientation(image.affine), axcodes2ornt(tuple(codes))))
        target = out / subject / Path(path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        nib.save(moved, target)
        files[modality] = str(target)
    return files


def copy_subject(source: Path, subject: str, out: Path, drop: tuple[str, ...] = ()) -> None:
    (out / subject).mkdir(parents=True, exist_ok=True)
    for path in (source / subject).iterdir():
        if not any(path.name.endswith(f"_{m}.nii.gz") for m in drop):
            shutil.copy(path, out / subject / path.name)


def truncate(path: Path) -> None:
    """Cut a .nii.gz in half: a corrupt gzip stream."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

"""The phantom cohort on disk: manifest vs files, NIfTI affines and dtypes, labels inside the brain."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from data_prep.phantom import MANIFEST_COLUMNS, MR_MODALITIES
from data_prep.phantom.__main__ import main


def _manifest(root: Path) -> list[dict[str, str]]:
    with (root / "manifest.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == MANIFEST_COLUMNS
        return list(reader)


def test_manifest_matches_files(phantom_dir):
    rows = _manifest(phantom_dir)
    listed = {row["path"] for row in rows}
    on_disk = {str(p.relative_to(phantom_dir)) for p in phantom_dir.glob("sub-*/*.nii.gz")}
    assert listed == on_disk
    assert len(listed) == len(rows), "duplicate manifest rows"

    by_subject = defaultdict(dict)
    for row in rows:
        assert row["path"] == f"{row['subject']}/{row['subject']}_{row['modality']}.nii.gz"
        by_subject[row["subject"]][row["modality"]] = row["site"]
    assert sorted(by_subject) == [f"sub-{i:03d}" for i in range(8)]
    for subject, modalities in by_subject.items():
        assert {"seg", "tissue"} <= set(modalities), subject
        assert set(modalities) - {"seg", "tissue"}, f"{subject} has no image modality"
        assert set(modalities) <= set(MR_MODALITIES) | {"seg", "tissue"}
        assert len(set(modalities.values())) == 1, f"{subject} has several sites"

    facts = json.loads((phantom_dir / "cohort.json").read_text())
    for subject, info in facts["subjects"].items():
        available = {m for m, ok in info["available"].items() if ok}
        assert available == set(by_subject[subject]) - {"seg", "tissue"}


def test_affines_valid_and_shared_within_subject(phantom_dir):
    rows = _manifest(phantom_dir)
    affines = defaultdict(list)
    for row in rows:
        image = nib.load(phantom_dir / row["path"])
        affine = image.affine
        assert np.isfinite(affine).all()
        assert abs(np.linalg.det(affine[:3, :3])) > 1e-3
        assert nib.aff2axcodes(affine) == ("R", "A", "S")
        assert np.allclose(image.header.get_zooms(), (2.0, 2.0, 2.0))
        assert np.allclose(image.header.get_qform(), affine) and np.allclose(image.header.get_sform(), affine)
        affines[row["subject"]].append(affine)
        if row["modality"] in ("seg", "tissue"):
            assert image.get_data_dtype() == np.uint8
        else:
            assert image.get_data_dtype() == np.float32
    for subject, group in affines.items():
        assert all(np.array_equal(a, group[0]) for a in group), subject


def test_labels_inside_brain_and_valid(phantom_dir):
    tumour_subjects = 0
    for subject in sorted(p.name for p in phantom_dir.glob("sub-*")):
        seg = np.asarray(nib.load(phantom_dir / subject / f"{subject}_seg.nii.gz").dataobj)
        tissue = np.asarray(nib.load(phantom_dir / subject / f"{subject}_tissue.nii.gz").dataobj)
        assert set(np.unique(seg)) <= {0, 1, 2, 4}
        assert set(np.unique(tissue)) == {0, 1, 2, 3}
        assert not (seg[tissue == 0] > 0).any(), f"{subject}: tumour label outside the brain"
        if seg.any():
            tumour_subjects += 1
            assert {1, 2, 4} <= set(np.unique(seg)), f"{subject}: a tumour lacks a compartment"
        # Images are skull-stripped: zero outside the brain (the converter's mask relies on it).
        near_brain = ndimage.binary_dilation(tissue > 0, iterations=2)
        for path in (phantom_dir / subject).glob(f"{subject}_[tf]*.nii.gz"):
            if path.name.endswith("_tissue.nii.gz"):
                continue
            image = np.asarray(nib.load(path).dataobj)
            assert np.isfinite(image).all() and (image >= 0).all()
            assert not image[~near_brain].any(), f"{path.name}: signal far outside the brain"
            assert (image[tissue > 0] > 0).mean() > 0.99, f"{path.name}: brain voxels without signal"
    assert tumour_subjects == 4  # tumour_fraction 0.5 of 8 subjects, evenly interleaved


def test_cli_writes_cohort_and_preview(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["--out", str(out), "--subjects", "1", "--seed", "5", "--modalities", "t2", "flair",
                 "--missing", "none", "--tumour-fraction", "1", "--preview", "--workers", "1"]) == 0
    assert "wrote 1 subjects" in capsys.readouterr().out
    assert (out / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [row["modality"] for row in _manifest(out)] == ["t2", "flair", "seg", "tissue"]
    seg = np.asarray(nib.load(out / "sub-000" / "sub-000_seg.nii.gz").dataobj)
    assert seg.any(), "--tumour-fraction 1 gives every subject a tumour"

"""Same seed -> byte-identical files, whatever the worker count or cohort size; another seed differs."""

from __future__ import annotations

import hashlib

from data_prep.phantom import generate_cohort


def _digests(root, subjects):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for s in subjects for p in sorted((root / s).glob("*.nii.gz"))}


def test_same_seed_byte_identical_and_other_seed_differs(phantom_dir, tmp_path):
    # The session cohort ran 8 subjects in parallel; regenerate the first two serially.
    again = tmp_path / "again"
    generate_cohort(again, subjects=2, seed=0, resolution=2, workers=1)
    subjects = ["sub-000", "sub-001"]
    reference = _digests(phantom_dir, subjects)
    assert reference and _digests(again, subjects) == reference

    other = tmp_path / "other"
    generate_cohort(other, subjects=1, seed=1, resolution=2, workers=1)
    tissue = "sub-000/sub-000_tissue.nii.gz"
    assert _digests(other, ["sub-000"])[tissue] != reference[tissue]


def test_regenerating_into_the_same_folder_replaces_it(tmp_path):
    generate_cohort(tmp_path, subjects=2, seed=3, workers=1, modalities=("t1",), missing={"t1": 1.0})
    generate_cohort(tmp_path, subjects=1, seed=3, workers=1, modalities=("t1",), missing={"t1": 1.0})
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["sub-000"]
    assert not list(tmp_path.glob(".staging-*"))

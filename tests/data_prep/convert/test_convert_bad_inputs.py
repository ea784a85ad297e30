"""Bad inputs: one clear line per file, the other subjects converted, non-zero exit, --strict stops."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
from convert_helpers import AFFINE, SHAPE, image, save, tissue_map, write_subject

from data_prep.convert import ConvertError, convert
from data_prep.convert.__main__ import main
from raysys.data import StoreError, open_store

# subject -> (file that must be named, words the problem must contain)
EXPECTED = {
    "truncated": ("truncated_t2.nii.gz", "truncated"),
    "notnifti": ("notnifti_t2.nii", "not a"),
    "flat": ("flat_t2.nii.gz", "2-D"),
    "fourd": ("fourd_t2.nii.gz", "4-D"),
    "nans": ("nans_t2.nii.gz", "NaN/inf"),
    "shape": ("shape_t2.nii.gz", "shape"),
    "affine": ("affine_t2.nii.gz", "affine differs"),
    "dupmod": ("dupmod_t1gd.nii.gz", "duplicate"),
    "duphome": ("duphome", "duplicate subject"),
    "zeros": ("zeros_t2.nii.gz", "all-zero"),
    "unknown": ("unknown_t3.nii.gz", "unknown modality"),
    "unreadable": ("unreadable_t2.nii.gz", "unreadable"),
}
GOOD = ["good0", "good1", "squeezed"]


def _bad_cohort(root):
    for i, subject in enumerate(GOOD[:2]):
        write_subject(root, subject, seed=i)
    tissue = tissue_map(7)
    t2 = image(tissue, "t2", 7)
    write_subject(root, "squeezed", seed=7, modalities=("t1",))
    save(t2[..., None], root / "squeezed" / "squeezed_t2.nii.gz")  # 4-D with a singleton: accepted
    for subject in EXPECTED:
        write_subject(root, subject, seed=3, modalities=("t1",))
    folder = root

    def bad(subject, data, name=None, affine=AFFINE):
        return save(data, folder / subject / (name or f"{subject}_t2.nii.gz"), affine)

    raw = gzip.compress(nib.Nifti1Image(t2, AFFINE).to_bytes())
    (root / "truncated" / "truncated_t2.nii.gz").write_bytes(raw[: len(raw) // 2])
    (root / "notnifti" / "notnifti_t2.nii").write_bytes(b"this is not an image\n" * 40)
    bad("flat", t2[:, :, 10])
    bad("fourd", np.stack([t2, t2], axis=-1))
    nans = t2.copy()
    nans[5, 5, 5] = np.nan
    bad("nans", nans)
    bad("shape", t2[:, :, :-2])
    shifted = AFFINE.copy()
    shifted[0, 3] += 5
    bad("affine", t2, affine=shifted)
    bad("dupmod", t2, name="dupmod_t1ce.nii.gz")
    bad("dupmod", t2, name="dupmod_t1gd.nii.gz")
    bad("duphome", t2, name="../elsewhere/duphome_t2.nii.gz")
    bad("zeros", np.zeros(SHAPE, dtype=np.float32))
    bad("unknown", t2, name="unknown_t3.nii.gz")
    (root / "unreadable" / "unreadable_t2.nii.gz").symlink_to(root / "does-not-exist.nii.gz")
    return root


@pytest.fixture(scope="module")
def bad_cohort(tmp_path_factory):
    return _bad_cohort(tmp_path_factory.mktemp("bad"))


def test_each_bad_input_gives_one_line_naming_the_file(bad_cohort, tmp_path):
    report = convert(str(bad_cohort), str(tmp_path / "store.zarr"), size=(32, 32), folds=3, progress=False)
    assert report.subjects == sorted(GOOD)
    by_subject = {}
    for problem in report.failures:
        by_subject.setdefault(problem.subject, []).append(problem)
        assert "\n" not in problem.line()
    assert set(by_subject) == set(EXPECTED)
    for subject, (file_name, words) in EXPECTED.items():
        lines = [p.line() for p in by_subject[subject]]
        assert any(file_name in line and words in line for line in lines), (subject, lines)
    store = open_store(report.output)      # complete, with the good subjects only
    assert store.subjects == sorted(GOOD)
    assert store.attrs["failed"] and len(store.attrs["failed"]) == len(report.failures)


def test_cli_exits_non_zero_with_a_summary_table(bad_cohort, tmp_path, capsys):
    code = main(["--input", str(bad_cohort), "--output", str(tmp_path / "cli.zarr"), "--size", "24", "24",
                 "--folds", "3", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "subject" in err and "problem" in err and "truncated_t2.nii.gz" in err
    assert err.count("error: ") == len(EXPECTED)


def test_strict_stops_at_a_bad_file_found_while_listing_before_writing_anything(bad_cohort, tmp_path):
    url = tmp_path / "strict.zarr"
    with pytest.raises(ConvertError, match=r"\.nii"):
        convert(str(bad_cohort), str(url), size=(24, 24), folds=3, strict=True, progress=False)
    assert not url.exists()  # a bad volume found while converting leaves an incomplete store (next test)


def test_strict_error_in_a_volume_names_the_file(tmp_path):
    write_subject(tmp_path / "in", "a", seed=0, modalities=("t1",))
    save(np.zeros(SHAPE, dtype=np.float32), tmp_path / "in" / "b" / "b_t1.nii.gz")
    url = str(tmp_path / "strict.zarr")
    with pytest.raises(ConvertError, match=r"b_t1\.nii\.gz: all-zero volume"):
        convert(str(tmp_path / "in"), url, size=(24, 24), folds=3, strict=True, workers=1, progress=False)
    with pytest.raises(StoreError, match="incomplete"):
        open_store(url)


@pytest.mark.parametrize("kwargs, words", [
    ({"size": (4, 64)}, "--size"), ({"normalise": "max"}, "--normalise"), ({"dtype": "int8"}, "--dtype"),
    ({"folds": 2}, "--folds"), ({"slices": "9:3"}, "--slices"), ({"modalities": ["t7"]}, "--modalities"),
])
def test_bad_arguments_name_the_argument(tmp_path, kwargs, words):
    write_subject(tmp_path / "in", "a", seed=0, modalities=("t1",))
    with pytest.raises(ConvertError, match=words):
        convert(str(tmp_path / "in"), str(tmp_path / "o.zarr"), **{"folds": 3, "progress": False, **kwargs})


def test_output_that_is_not_a_store_is_refused(tmp_path):
    write_subject(tmp_path / "in", "a", seed=0, modalities=("t1",))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "precious.txt").write_text("keep me")
    with pytest.raises(ConvertError, match="not a raysys store"):
        convert(str(tmp_path / "in"), str(tmp_path / "out"), folds=3, progress=False)
    assert (tmp_path / "out" / "precious.txt").read_text() == "keep me"

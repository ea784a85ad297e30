"""One subject at a time (``process_subject``, no Ray): the files written, their grid and
header, orientations on disk, determinism, a corrupt file, disentangle outputs."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from predict_helpers import copy_subject, reoriented_subject, subject_files, truncate

from raysys.predict.pipeline import process_subject
from raysys.predict.preprocess import PredictError, preprocessing_of
from raysys.predict.synthesis import SynthesisPredictor
from raysys.registry import load


def _run(model_dir, files, out, subject="sub-000", **options):
    inference = load(str(model_dir))
    predictor = SynthesisPredictor(inference, **options)
    return process_subject(subject, files, predictor, preprocessing_of(inference.meta), str(out))


def _missing_one(phantom_dir) -> str:
    from data_prep.convert.discover import discover

    subjects = discover(phantom_dir).subjects
    return next(s for s, f in sorted(subjects.items()) if not {"t1", "t1gd", "t2", "flair"} <= set(f))


def test_missing_modalities_are_written_on_the_inputs_grid(fast_models, phantom_dir, tmp_path):
    subject = _missing_one(phantom_dir)
    files = subject_files(phantom_dir, subject)
    rows = _run(fast_models["mmhvae"], files, tmp_path, subject)
    inputs = [r for r in rows if not r["synthesised"]]
    written = [r for r in rows if r["synthesised"]]
    assert {r["modality"] for r in inputs} == {m for m in files if m in ("t1", "t1gd", "t2", "flair")}
    assert {r["modality"] for r in written} == {"t1", "t1gd", "t2", "flair"} - set(files)
    reference = nib.load(files["t1"])
    brain = np.asarray(nib.load(files["tissue"]).dataobj) > 0
    for row in written:
        assert row["path"] == f"{subject}/{subject}_{row['modality']}.nii.gz" and not row["error"]
        image = nib.load(tmp_path / row["path"])
        data = np.asarray(image.dataobj)
        assert image.get_data_dtype() == np.float32 and data.shape == reference.shape
        assert np.array_equal(image.affine, reference.affine)
        assert int(image.header["qform_code"]) == int(reference.header["qform_code"])
        assert int(image.header["sform_code"]) == int(reference.header["sform_code"])
        assert np.allclose(image.header.get_qform(), reference.header.get_qform())
        assert not data[~brain].any() and data[brain].std() > 0
        kept = np.zeros(data.shape[2], bool)
        kept[40:52] = True                                    # fast_record's slices (RAS file: z is z)
        assert data[:, :, kept].any() and not data[:, :, ~kept].any()
    assert sorted(p.name for p in (tmp_path / subject).iterdir()) == sorted(f"{subject}_{r['modality']}.nii.gz" for r in written)


def test_any_orientation_on_disk_gives_the_same_world_space_result(fast_models, phantom_dir, tmp_path):
    subject = _missing_one(phantom_dir)
    results = {}
    for codes in ("RAS", "LAS", "RPS", "PIR"):
        files = reoriented_subject(phantom_dir, subject, codes, tmp_path / f"in-{codes}")
        rows = _run(fast_models["mmhvae"], files, tmp_path / f"out-{codes}", subject, temperature=1.0, seed=3)
        written = {r["modality"]: tmp_path / f"out-{codes}" / r["path"] for r in rows if r["synthesised"]}
        images = {m: nib.load(p) for m, p in written.items()}
        source = nib.load(files["t1"])
        for image in images.values():    # the file's own voxel order and affine
            assert image.shape == source.shape and np.allclose(image.affine, source.affine)
            assert nib.aff2axcodes(image.affine) == tuple(codes)
        results[codes] = {m: nib.as_closest_canonical(i) for m, i in images.items()}
    ras = results.pop("RAS")
    assert ras
    for codes, canonical in results.items():
        for modality, image in canonical.items():
            assert np.allclose(image.affine, ras[modality].affine, atol=1e-5)
            assert np.allclose(image.get_fdata(), ras[modality].get_fdata(), atol=1e-5), (codes, modality)


def test_a_seed_repeats_a_draw_and_another_seed_does_not(fast_models, phantom_dir, tmp_path):
    subject = _missing_one(phantom_dir)
    files = subject_files(phantom_dir, subject)
    runs = {name: _run(fast_models["mmhvae"], files, tmp_path / name, subject, temperature=1.0, seed=seed)
            for name, seed in (("a", 0), ("b", 0), ("c", 1))}
    path = next(r["path"] for r in runs["a"] if r["synthesised"])
    data = {name: np.asarray(nib.load(tmp_path / name / path).dataobj) for name in runs}
    assert np.array_equal(data["a"], data["b"])
    assert not np.array_equal(data["a"], data["c"])


def test_a_corrupt_file_is_named_and_nothing_is_written(fast_models, phantom_dir, tmp_path):
    subject = _missing_one(phantom_dir)
    copy_subject(phantom_dir, subject, tmp_path / "in")
    broken = tmp_path / "in" / subject / f"{subject}_t1.nii.gz"
    truncate(broken)
    rows = _run(fast_models["mmhvae"], subject_files(tmp_path / "in", subject), tmp_path / "out", subject)
    assert len(rows) == 1 and rows[0]["error"].startswith(f"{broken}: corrupt or truncated gzip")
    assert not (tmp_path / "out").exists()


def test_disentangle_writes_anatomy_maps_and_refuses_synthesis(fast_models, phantom_dir, tmp_path):
    subject = _missing_one(phantom_dir)
    files = subject_files(phantom_dir, subject)
    meta = load(str(fast_models["disentangle"])).meta
    with pytest.raises(PredictError, match="code z"):
        SynthesisPredictor.check(meta, output="synthesis")
    with pytest.raises(PredictError, match="--output anatomy"):
        SynthesisPredictor.check(load(str(fast_models["mmhvae"])).meta, output="anatomy")
    fused = _run(fast_models["disentangle"], files, tmp_path / "fused", subject)          # the default
    assert [r["modality"] for r in fused if r["synthesised"]] == ["anatomy-fused"]
    anatomy = _run(fast_models["disentangle"], files, tmp_path / "anatomy", subject, output="anatomy")
    have = [m for m in ("t1", "t1gd", "t2", "flair") if m in files]
    assert [r["modality"] for r in anatomy if r["synthesised"]] == [f"anatomy-{m}" for m in have]
    shape = nib.load(files["t1"]).shape
    channels = nib.load(tmp_path / "anatomy" / anatomy[-1]["path"]).shape[3]
    assert nib.load(tmp_path / "anatomy" / anatomy[-1]["path"]).shape == (*shape, channels)
    assert nib.load(tmp_path / "fused" / fused[-1]["path"]).shape == (*shape, 3 * channels)

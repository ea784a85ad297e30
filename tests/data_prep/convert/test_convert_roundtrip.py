"""Every stored slice equals an independent numpy recomputation (catches lost shard writes)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import zarr
from convert_helpers import expected_zscore, to_las, write_subject

from data_prep.convert import ConvertError, convert
from data_prep.convert.pipeline import DEFAULT_SHARD_SLICES
from raysys.data import SliceDataset, open_store

SUBJECTS = [f"s{i:02d}" for i in range(6)]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    paths = {}
    for i, subject in enumerate(SUBJECTS):
        # s01 lacks flair, s03 lacks t2: missing modalities must read back as zeros
        modalities = [m for m in ("t1", "t2", "flair") if (subject, m) not in {("s01", "flair"), ("s03", "t2")}]
        paths[subject] = write_subject(root, subject, seed=i, modalities=modalities)
    return root, paths


def test_every_slice_of_every_modality_round_trips(cohort, tmp_path):
    root, paths = cohort
    url = str(tmp_path / "store.zarr")
    # 4-slice shards and 2 workers: subjects straddle shards and tasks run concurrently
    report = convert(str(root), url, size=(48, 40), folds=3, workers=2, shard_slices=4, progress=False)
    assert report.ok and report.subjects == SUBJECTS
    store = open_store(url)
    assert store.modalities == ["t1", "t2", "flair"]
    assert store.attrs["complete"] is True and store.attrs["normalisation"] == "zscore"
    assert store.value_range == (-5.0, 5.0)
    total = 0
    for subject in SUBJECTS:
        z, expected = expected_zscore(paths[subject])
        start, stop = store.slice_range(subject)
        assert stop - start == z.size
        np.testing.assert_array_equal(store.slice_z[start:stop], z)
        for modality in store.modalities:
            stored = store.array(f"images/{modality}")[start:stop]
            if modality in expected:
                assert store.available(subject)[modality]
                np.testing.assert_allclose(stored, expected[modality], atol=1e-4, err_msg=f"{subject} {modality}")
            else:
                assert not store.available(subject)[modality]
                assert not stored.any()
        total += z.size
    assert store.n_slices == total
    assert sorted(store.attrs["source_sha256"]["s00"]) == ["flair", "t1", "t2", "tissue"]


def test_missing_modalities_cost_no_storage(cohort, tmp_path):
    root, _ = cohort
    url = tmp_path / "store.zarr"
    convert(str(root), str(url), size=(48, 40), folds=3, shard_slices=1, progress=False)
    store = open_store(str(url))
    def shard_files(modality: str) -> int:
        return sum(1 for p in (url / "images" / modality / "c").rglob("*") if p.is_file())

    start, stop = store.slice_range("s03")   # s03 has no t2: its one-slice shards are never written
    assert shard_files("t1") == store.n_slices
    assert shard_files("t1") - shard_files("t2") == stop - start


def test_las_copy_gives_the_same_store_as_ras(cohort, tmp_path):
    _, paths = cohort
    ras, las = tmp_path / "ras", tmp_path / "las"
    for modality, path in paths["s00"].items():
        name = path.name
        (ras / "s00").mkdir(parents=True, exist_ok=True)
        (ras / "s00" / name).write_bytes(path.read_bytes())
        to_las(path, las / "s00" / name)
    a, b = (convert(str(d), str(tmp_path / f"{d.name}.zarr"), size=(32, 32), folds=3, progress=False)
            for d in (ras, las))
    store_a, store_b = open_store(a.output), open_store(b.output)
    for name in ["images/t1", "images/t2", "images/flair", "mask", "tissue"]:     # bit-identical
        assert store_a.array(name)[...].tobytes() == store_b.array(name)[...].tobytes(), name
    np.testing.assert_array_equal(store_a.slice_z, store_b.slice_z)


def test_memory_url_store_and_aliases(cohort, tmp_path):
    root, _ = cohort
    url = f"memory://raysys-test-{uuid.uuid4().hex}/store.zarr"
    report = convert(str(root), url, modalities=["T2w", "T1"], size=(24, 24), normalise="minmax",
                     dtype="float16", folds=3, progress=False)
    store = open_store(url)
    assert store.modalities == ["t2", "t1"] and report.ok
    assert store.value_range == (0.0, 1.0)
    assert store.array("images/t1").dtype == np.float16
    volume = store.volume("s00", "t1")
    assert volume.shape[1:] == (24, 24) and 0.0 <= volume.min() and volume.max() <= 1.0
    item = SliceDataset(url, split="all", context=3)[5]
    assert item["images"].shape == (2, 3, 24, 24)
    root_group = zarr.open_group(url, mode="r")
    assert root_group["images/t1"].shards == (DEFAULT_SHARD_SLICES, 24, 24)
    assert root_group["images/t1"].chunks == (1, 24, 24)


def test_wm_median_puts_white_matter_median_at_target(cohort, tmp_path):
    root, _ = cohort
    url = str(tmp_path / "wm.zarr")
    convert(str(root), url, size=(48, 40), normalise="wm-median", folds=3, progress=False)
    store = open_store(url)
    tissue = store.volume("s00", "tissue")
    for modality, target in (("t2", 1 / 7), ("flair", 1 / 3), ("t1", 1 / 3)):
        values = store.volume("s00", modality)[tissue == 3]
        assert abs(np.median(values) - target) < 0.02, modality
    assert store.attrs["subject_normalisation"]["s00"]["white_matter_from"] == "tissue"


def test_explicit_slice_range(cohort, tmp_path):
    root, _ = cohort
    report = convert(str(root), str(tmp_path / "r.zarr"), size=(24, 24), slices="5:15", folds=3, progress=False)
    store = open_store(report.output)
    assert report.ok and store.n_slices == 10 * len(SUBJECTS)
    np.testing.assert_array_equal(store.slice_z, np.tile(np.arange(5, 15), len(SUBJECTS)))
    with pytest.raises(ConvertError, match="(?s)no subject could be converted.*5:99 exceeds"):
        convert(str(root), str(tmp_path / "d.zarr"), size=(24, 24), slices="5:99", folds=3, progress=False)

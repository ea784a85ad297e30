"""Stores on object storage: the converter writes s3:// with the same atomicity and resume rules as a
local store, and readers fetch each byte range once per process."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from data_prep.convert import convert
from data_prep.convert.subject import CRASH_AFTER_ENV
from raysys.data import SliceDataset, StoreError, open_store

from .conftest import BUCKET, ROOT_DIR

pytestmark = pytest.mark.slow

SETTINGS = dict(size=(32, 32), folds=4, seed=0)


def test_killed_conversion_to_s3_resumes_into_the_same_store_as_a_local_one(aws, phantom_dir, tmp_path):
    url = f"s3://{BUCKET}/resume.zarr"
    args = ["--input", str(phantom_dir), "--output", url, "--size", "32", "32", "--folds", "4",
            "--workers", "1", "--scheduler", "threads", "--quiet"]
    killed = subprocess.run([sys.executable, "-m", "data_prep.convert", *args], cwd=ROOT_DIR,
                            env={**os.environ, CRASH_AFTER_ENV: "2", "OMP_NUM_THREADS": "1"},
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == 75, killed.stderr[-2000:]  # died after staging two subjects
    with pytest.raises(StoreError, match="incomplete"):
        open_store(url)

    report = convert(str(phantom_dir), url, progress=False, **SETTINGS)
    assert len(report.resumed) == 2 and not set(report.resumed) & set(report.processed)
    remote = open_store(url)
    local = open_store(convert(str(phantom_dir), str(tmp_path / "local.zarr"), progress=False, **SETTINGS).output)
    assert remote.store_id == local.store_id  # same content, wherever it lives
    for name in ["mask"] + [f"images/{m}" for m in local.modalities]:
        assert np.array_equal(remote.array(name)[...], local.array(name)[...]), name


def test_remote_reads_are_cached_per_process(aws, s3_server, phantom_dir):
    url = f"s3://{BUCKET}/cached.zarr"
    convert(str(phantom_dir), url, progress=False, **SETTINGS)
    dataset = SliceDataset(url, split="train", preload=False)
    indices = np.random.default_rng(0).choice(len(dataset), size=20, replace=False)

    before = s3_server.gets()
    first = [dataset[int(i)]["images"] for i in indices]
    fetched = s3_server.gets() - before
    assert fetched > 0  # range reads of shard indexes and chunks really went to S3
    again = [dataset[int(i)]["images"] for i in indices]
    assert s3_server.gets() - before == fetched  # the second epoch re-downloads nothing
    assert all(np.array_equal(a, b) for a, b in zip(first, again))


def test_small_remote_stores_are_preloaded(aws, s3_server, phantom_dir):
    url = f"s3://{BUCKET}/preload.zarr"
    convert(str(phantom_dir), url, progress=False, **SETTINGS)
    dataset = SliceDataset(url, split="train")  # preload=None: small stores are read whole, once
    assert dataset.preload
    dataset.load()
    before = s3_server.gets()
    for i in range(0, len(dataset), 7):
        dataset[i]
    assert s3_server.gets() == before

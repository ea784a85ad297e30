"""The converter runs on a dask.distributed cluster given by its address (and on processes)."""

from __future__ import annotations

import numpy as np
from convert_helpers import write_subject
from dask.distributed import LocalCluster

from data_prep.convert import convert
from raysys.data import open_store


def test_distributed_address_gives_the_same_store_as_threads(tmp_path):
    for i in range(3):
        write_subject(tmp_path / "in", f"d{i}", seed=i)
    reference = convert(str(tmp_path / "in"), str(tmp_path / "threads.zarr"), size=(32, 32), folds=3,
                        progress=False)
    # in-process cluster (inproc:// transport): no sockets, no dashboard, still a real scheduler
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0") as cluster:
        report = convert(str(tmp_path / "in"), str(tmp_path / "dist.zarr"), size=(32, 32), folds=3,
                         scheduler=cluster.scheduler_address, progress=False)
    assert report.ok and report.subjects == reference.subjects
    a, b = open_store(reference.output), open_store(report.output)
    for modality in a.modalities:
        np.testing.assert_array_equal(a.array(f"images/{modality}")[...], b.array(f"images/{modality}")[...])

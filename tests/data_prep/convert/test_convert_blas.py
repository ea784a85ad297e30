"""The store's resizing gives the same bits whatever BLAS threads its caller runs with, from the
main thread and from concurrent threads (on a 2-core AMD EPYC, OpenBLAS with 2 threads gave other
bits than with 1, and raysys.predict no longer matched the store)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from data_prep.convert.subject import resize_slab


def _slab(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    volume = rng.normal(size=(96, 112, 40)).astype(np.float32)
    mask = np.zeros(volume.shape, dtype=bool)
    mask[10:85, 12:100, :] = True
    out = resize_slab({"x": volume}, {"x": (0.5, 2.0)}, mask, None, slice(0, 40), (64, 64), "zscore")["images/x"]
    assert np.abs(out).max() > 0
    return out.tobytes()


def test_resized_slab_has_the_same_bits_whatever_the_callers_blas_threads():
    seeds = [3, 4, 5, 6]
    with threadpool_limits(1, user_api="blas"):
        reference = [_slab(s) for s in seeds]
    with threadpool_limits(2, user_api="blas"):
        assert [_slab(s) for s in seeds] == reference
        with ThreadPoolExecutor(2) as pool:        # as the converter's Dask threads run them
            for _ in range(3):
                assert list(pool.map(_slab, seeds)) == reference
    assert [_slab(s) for s in seeds] == reference

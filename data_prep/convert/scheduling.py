"""The one place that talks to Dask: run a list of tasks with a progress bar on a chosen scheduler.

``scheduler`` is "threads", "processes" (local Dask schedulers, ``workers`` of them) or the
address of a ``dask.distributed`` scheduler (e.g. ``tcp://127.0.0.1:8786``).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable, Sequence

import dask
from dask.base import named_schedulers
from dask.diagnostics import ProgressBar
from threadpoolctl import threadpool_limits

LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")


def run(function: Callable[..., Any], arguments: Sequence[tuple], scheduler: str, workers: int | None,
        label: str, progress: bool = True) -> list[Any]:
    """``[function(*a) for a in arguments]`` computed by Dask; the first exception is re-raised."""
    if not arguments:
        return []
    tasks = [dask.delayed(function, pure=False)(*a) for a in arguments]
    if scheduler in LOCAL_SCHEDULERS:
        # the scheduler function itself: a name makes dask import dask.distributed (~0.3 s) first
        get = named_schedulers.get(scheduler, scheduler)
        # the Dask threads already use every core: BLAS threads on top of them (the brain-mask
        # estimate's saxpy; the resizing's matmul when this was measured: -15 %) oversubscribe the
        # CPU and serialise on BLAS's own lock
        limit = threadpool_limits(1, user_api="blas") if scheduler == "threads" else contextlib.nullcontext()
        with limit:
            if progress:
                print(f"{label}: {len(tasks)} tasks on {scheduler} scheduler", file=sys.stderr)
                with ProgressBar(out=sys.stderr, dt=0.5):
                    return list(dask.compute(*tasks, scheduler=get, num_workers=workers))
            return list(dask.compute(*tasks, scheduler=get, num_workers=workers))
    return _run_distributed(tasks, scheduler, label, progress)


def _run_distributed(tasks: list, address: str, label: str, progress: bool) -> list[Any]:
    from dask.distributed import Client, as_completed
    from tqdm import tqdm

    with Client(address, set_as_default=False) as client:
        futures = client.compute(tasks)
        index = {future.key: i for i, future in enumerate(futures)}
        results: list[Any] = [None] * len(futures)
        try:
            for future in tqdm(as_completed(futures, loop=client.loop), total=len(futures), desc=label,
                               disable=not progress, file=sys.stderr):
                results[index[future.key]] = future.result()
        except BaseException:
            client.cancel(futures)
            raise
        return results

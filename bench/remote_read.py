"""Training-sample reads/s from a store on S3 against the same store on local disk.

    python bench/remote_read.py [--subjects 12] [--items 300]

Starts moto's S3 server on 127.0.0.1 (a real S3 API; loopback, so network latency is ~0 and a
real bucket is slower per request), copies the bench cohort's store there with data_prep.convert,
and reads the same ``--items`` random training samples (M = 4, context 3) twice ("epochs") with
SliceDataset(preload=False) in one process. Prints one JSON object:
  local              items/s from local disk (raysys.data.fastread)
  s3_epoch1          items/s from S3, cold per-process range cache
  s3_epoch2          items/s from S3, the same items again: served by the cache
  s3_uncached_epoch2 items/s from S3 with RAYSYS_REMOTE_CACHE_BYTES=0 (every read a request)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from data_common import cohort, store  # noqa: E402


def moto_server() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
            return proc, endpoint
        except OSError:
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError("moto_server did not start")


def epoch_rates(url: str, indices: np.ndarray, epochs: int = 2) -> list[float]:
    from raysys.data import SliceDataset

    dataset = SliceDataset(url, split="train", preload=False)
    rates = []
    for _ in range(epochs):
        start = time.perf_counter()
        for i in indices:
            dataset[int(i)]
        rates.append(len(indices) / (time.perf_counter() - start))
    return rates


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subjects", type=int, default=12)
    p.add_argument("--items", type=int, default=300)
    args = p.parse_args()

    local = store(cohort(subjects=args.subjects), (64, 64))
    proc, endpoint = moto_server()
    try:
        os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                           "AWS_DEFAULT_REGION": "us-east-1"})
        import boto3

        boto3.client("s3").create_bucket(Bucket="bench")
        from data_prep.convert import convert
        from raysys.data import SliceDataset

        remote = "s3://bench/store.zarr"
        convert(str(cohort(subjects=args.subjects)), remote, size=(64, 64), folds=4, progress=False)
        n = len(SliceDataset(local, split="train", preload=False))
        indices = np.random.default_rng(0).choice(n, size=min(args.items, n), replace=False)
        local_rate = epoch_rates(local, indices, epochs=1)[0]
        s3_rates = epoch_rates(remote, indices)
        os.environ["RAYSYS_REMOTE_CACHE_BYTES"] = "0"
        uncached = epoch_rates(remote, indices)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
    print(json.dumps({
        "bench": "remote_read", "items": len(indices), "subjects": args.subjects, "size": [64, 64],
        "local": round(local_rate, 1), "s3_epoch1": round(s3_rates[0], 1), "s3_epoch2": round(s3_rates[1], 1),
        "s3_uncached_epoch2": round(uncached[1], 1),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; S3 = moto on loopback",
    }, indent=2))


if __name__ == "__main__":
    main()

"""Loopback stand-ins for a cluster's shared services: an S3 API (moto's standalone server), an
MLflow server keeping artifacts on that S3, and Ray nodes started with the real ``ray start`` CLI.

Every process is started in a session of its own and stopped by that session id, so nothing
else on the machine is touched. Only 127.0.0.1 is ever used.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable

import pytest

BIN = Path(sys.executable).parent
ROOT_DIR = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
# Ray replaces 127.0.0.1 (and only that spelling of loopback) by the machine's routable address;
# other 127/8 addresses are kept, so the Ray nodes live on these and never leave loopback.
HEAD_IP = "127.0.0.2"
NODE_IP = "127.0.0.3"
BUCKET = "raysys-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.5) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:  # noqa: BLE001 - the service is not up yet
            pass
        time.sleep(poll)
    raise TimeoutError(f"{what} not reached within {timeout:.0f} s")


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status == 200


class Sessions:
    """Processes started with ``start_new_session``; ``stop`` kills each session's process group."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
        proc = subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=10)
                    break
                except subprocess.TimeoutExpired:
                    continue


class S3Server:
    """The moto server's AWS variables (``env``) and its request log (``gets()``)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log

    def gets(self) -> int:
        """GET requests answered so far (moto logs one line per request)."""
        return sum(1 for line in self.log.read_text().splitlines() if '"GET /' in line)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A moto S3 server on loopback with one bucket, for the whole session: s3fs caches its
    filesystem objects (endpoint included), so the endpoint must not change between modules."""
    import boto3

    root = tmp_path_factory.mktemp("s3")
    port = free_port()
    sessions = Sessions()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://{LOOPBACK}:{port}", "MLFLOW_S3_ENDPOINT_URL": f"http://{LOOPBACK}:{port}"}
    sessions.start([str(BIN / "moto_server"), "-H", LOOPBACK, "-p", str(port)], root / "moto.log", {**os.environ, **env})
    try:
        wait_until(lambda: http_ok(f"http://{LOOPBACK}:{port}/moto-api/"), 60, "moto S3 server")
        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                     aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket=BUCKET)
        yield S3Server(env, root / "moto.log")
    finally:
        sessions.stop()


@pytest.fixture(scope="session")
def s3_env(s3_server) -> dict[str, str]:
    return s3_server.env


@pytest.fixture()
def aws(s3_env, monkeypatch):
    """This process talks to the moto server (s3fs, boto3 and zarr read the AWS variables)."""
    for key, value in s3_env.items():
        monkeypatch.setenv(key, value)
    return s3_env


@pytest.fixture(scope="session")
def mlflow_s3(s3_env, tmp_path_factory):
    """An MLflow tracking server (sqlite backend) whose artifacts live in the S3 bucket."""
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    sessions = Sessions()
    sessions.start([str(BIN / "mlflow"), "server", "--host", LOOPBACK, "--port", str(port), "--workers", "1",
                    "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                    "--artifacts-destination", f"s3://{BUCKET}/mlartifacts"],
                   root / "mlflow.log", {**os.environ, **s3_env})
    uri = f"http://{LOOPBACK}:{port}"
    try:
        wait_until(lambda: http_ok(f"{uri}/health"), 120, "MLflow server")
        yield uri
    finally:
        sessions.stop()


class RayNodes:
    """A head and extra nodes started by the ``ray`` CLI, all under one short temp dir."""

    def __init__(self, env: dict[str, str]) -> None:
        self.temp_dir = tempfile.mkdtemp(prefix="rn", dir="/tmp")  # Ray's socket paths are length-limited
        token = Path(self.temp_dir) / "auth_token"  # the head runs with token auth, as a real one should
        token.write_text(os.urandom(32).hex())
        token.chmod(0o600)
        self.env = {**os.environ, **env, "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1",
                    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",
                    "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
        self.sessions = Sessions()
        self.port = free_port()
        self.dashboard_port = free_port()
        self.gcs = f"{HEAD_IP}:{self.port}"
        self.dashboard = f"http://{HEAD_IP}:{self.dashboard_port}"

    def _ray_start(self, node_ip: str, args: list[str], log: str) -> None:
        proc = self.sessions.start([str(BIN / "ray"), "start", "--block", "--disable-usage-stats",
                                    f"--node-ip-address={node_ip}", *args],
                                   Path(self.temp_dir) / log, self.env)
        assert proc.poll() is None, (Path(self.temp_dir) / log).read_text()

    def start_head(self, num_cpus: int) -> None:
        self._ray_start(HEAD_IP, ["--head", "--port", str(self.port), "--include-dashboard=true",
                         f"--dashboard-host={HEAD_IP}", "--dashboard-port", str(self.dashboard_port),
                         "--ray-client-server-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port()),
                         "--metrics-export-port", str(free_port()), "--runtime-env-agent-port", str(free_port()),
                         "--num-cpus", str(num_cpus), "--temp-dir", self.temp_dir], "head.log")
        wait_until(lambda: self.ray("job", "list", "--address", self.dashboard).returncode == 0, 180, "Ray job server")

    def add_node(self, num_cpus: int, name: str) -> int:
        """A node with ``{name: 1}`` as a custom resource; returns its node-manager port (its raylet's id)."""
        manager_port = free_port()
        self._ray_start(NODE_IP, ["--address", self.gcs, "--num-cpus", str(num_cpus), "--resources", f'{{"{name}": 1}}',
                         "--node-manager-port", str(manager_port), "--dashboard-agent-listen-port", str(free_port()),
                         "--metrics-export-port", str(free_port()), "--runtime-env-agent-port", str(free_port())],
                        f"{name}-{manager_port}.log")
        wait_until(lambda: self.alive_nodes() >= 2, 120, f"node {name} joining the cluster")
        return manager_port

    def alive_nodes(self) -> int:
        out = self.ray("list", "nodes", "--address", self.gcs, "--filter", "state=ALIVE", "--format", "json").stdout
        import json

        return len(json.loads(out))

    def kill_raylet(self, manager_port: int) -> None:
        """SIGKILL the raylet of one node: the node and its worker processes are lost."""
        pids = subprocess.run(["pgrep", "-f", f"raylet.*--node_manager_port={manager_port}( |$)"],
                              capture_output=True, text=True).stdout.split()
        assert len(pids) == 1, f"expected one raylet on node-manager port {manager_port}, found {pids}"
        os.kill(int(pids[0]), signal.SIGKILL)

    def ray(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "ray"), *args], capture_output=True, text=True, env=self.env, timeout=timeout)

    def stop(self) -> None:
        self.sessions.stop()
        leftovers = subprocess.run(["pgrep", "-f", "--", self.temp_dir], capture_output=True, text=True).stdout.split()
        for pid in leftovers:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass

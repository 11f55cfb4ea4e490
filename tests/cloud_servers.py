"""Real object-store servers on 127.0.0.1 for the cloud store tests.

moto's server speaks S3; gcp-storage-emulator speaks the GCS JSON API. Each
runs as a child process on a free port, is started at most once per test
session (the first test that needs it pays about a third of a second) and is
stopped when the session ends. Both come with the ``cloud`` extra's test
dependencies (``pip install -e '.[test]'``), so CI runs these tests too.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time

import attrs
import pytest

_STARTED: dict[str, Server] = {}
_BUCKETS = itertools.count(1)

#: Credentials for moto; it accepts any unless told to check them.
S3_KEY_ID = "AKIDRAFTSIMTEST"
S3_SECRET = "raftsim-test-secret-do-not-log-0123456789"


@attrs.frozen
class Server:
    name: str
    endpoint: str
    process: subprocess.Popen = attrs.field(repr=False)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(port: int, process: subprocess.Popen, name: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{name} did not listen on 127.0.0.1:{port} within 30 s")


def start(name: str, *, env: dict | None = None) -> Server:
    """Start a server (``moto``, ``moto-auth`` with credential checks, or ``gcs``) and return it."""
    port = _free_port()
    if name.startswith("moto"):
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    elif name == "gcs":
        command = [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1",
                   "--port", str(port), "--in-memory"]
    else:
        raise ValueError(f"unknown server {name!r}; moto, moto-auth or gcs expected")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, **(env or {})})
    _wait_for(port, process, name)
    return Server(name, f"http://127.0.0.1:{port}", process)


def stop(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def shared(request: pytest.FixtureRequest, name: str, **options) -> Server:
    """The session's one server of this kind, started on first use, stopped at the end."""
    server = _STARTED.get(name)
    if server is None or server.process.poll() is not None:
        server = _STARTED[name] = start(name, **options)
        request.config.add_cleanup(lambda: stop(server))
    return server


def new_bucket_name(kind: str) -> str:
    """A bucket name no other test in this session uses (valid for S3 and GCS)."""
    return f"raftsim-{kind}-{os.getpid()}-{next(_BUCKETS)}"


def s3_client(endpoint: str, *, key_id: str = S3_KEY_ID, secret: str = S3_SECRET):
    from simulator.snapshots.s3 import s3_client as make

    return make(endpoint_url=endpoint, region="us-east-1", access_key_id=key_id, secret_access_key=secret)


def gcs_client(endpoint: str):
    from simulator.snapshots.gcs import gcs_client as make

    return make(endpoint=endpoint, anonymous=True)


@pytest.fixture
def moto_server(request) -> Server:
    return shared(request, "moto")


@pytest.fixture
def gcs_emulator(request) -> Server:
    return shared(request, "gcs")


@pytest.fixture
def s3_bucket(moto_server) -> str:
    name = new_bucket_name("s3")
    s3_client(moto_server.endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def gcs_bucket(gcs_emulator) -> str:
    name = new_bucket_name("gcs")
    gcs_client(gcs_emulator.endpoint).create_bucket(name)
    return name

"""Real node processes for the gRPC tests: start, kill -9, restart, wait on conditions, a TCP proxy.

Not a test module (it holds none); the ``test_grpc_*`` modules import it.
Everything runs on 127.0.0.1 with ports picked free at run time; every wait
polls a condition read from the nodes' control service, with a generous
deadline for a loaded two-core machine, never a fixed sleep.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc

from transports.grpc import ClusterClient

REPO_ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
#: Deadline for any one condition: generous, for a loaded 2-core machine.
PATIENCE = 180.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition, what: str, timeout: float = PATIENCE, interval: float = 0.05):
    """Poll ``condition()`` until it returns a truthy value (returned); fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except grpc.RpcError as error:  # a node still starting or just killed
            last_error, value = error, None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}"
                         + (f" (last error: {last_error.code().name})" if last_error else ""))


class NodeProcess:
    """One ``python -m transports.grpc.node`` process and its log file."""

    def __init__(self, node_id: int, address: str, peers: dict[int, str], data_dir: Path, *,
                 mode: str = "streaming", extra: tuple[str, ...] = (), join: bool = False,
                 env: dict[str, str] | None = None) -> None:
        self.node_id = node_id
        self.env = env or {}
        self.address = address
        self.peers = peers
        self.data_dir = data_dir
        self.mode = mode
        self.extra = extra
        self.join = join
        self.log_path = data_dir.parent / f"node-{node_id}.log"
        self.process: subprocess.Popen | None = None

    def argv(self) -> list[str]:
        peers = ",".join(f"{i}={a}" for i, a in sorted(self.peers.items()))
        argv = [sys.executable, "-m", "transports.grpc.node", "--id", str(self.node_id), "--listen", self.address,
                "--peers", peers, "--data-dir", str(self.data_dir), "--mode", self.mode, *self.extra]
        return argv + (["--join"] if self.join else [])

    def start(self) -> NodeProcess:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **self.env}
        env.pop("grpc_proxy", None)
        env.pop("http_proxy", None)
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                            cwd=REPO_ROOT)
        return self

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, sig=signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Cluster:
    """Node processes on loopback plus a leader-following client."""

    def __init__(self, root: Path, size: int = 3, *, mode: str = "streaming", extra: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> None:
        self.root = root
        self.mode = mode
        self.extra = extra
        self.env = env
        self.addresses = {i: f"127.0.0.1:{free_port()}" for i in range(1, size + 1)}
        self.nodes = {i: NodeProcess(i, a, self.addresses, root / f"node-{i}", mode=mode, extra=extra, env=env)
                      for i, a in self.addresses.items()}
        self.client = ClusterClient(self.addresses, timeout=PATIENCE)

    def start(self) -> Cluster:
        for node in self.nodes.values():
            node.start()
        return self

    def add_process(self, node_id: int, peers: dict[int, str] | None = None, **options) -> NodeProcess:
        """Start a node that joins later (``--join``); ``peers`` may route through proxies."""
        address = f"127.0.0.1:{free_port()}"
        node = NodeProcess(node_id, address, {**(peers or self.addresses), node_id: address},
                           self.root / f"node-{node_id}", mode=self.mode, extra=self.extra, join=True,
                           env=self.env, **options)
        self.nodes[node_id] = node
        self.client.addresses[node_id] = address
        return node.start()

    def status(self, node_id: int, with_digest: bool = False):
        return self.client.status(node_id, with_digest=with_digest)

    def leader(self) -> int:
        def find():
            for node_id in sorted(self.nodes):
                process = self.nodes[node_id].process
                if process is None or process.poll() is not None:
                    continue
                try:
                    status = self.status(node_id)
                except grpc.RpcError:
                    continue
                if status.role == "leader":
                    return node_id
            return None

        return wait_until(find, "a leader")

    def close(self) -> None:
        self.client.close()
        for node in self.nodes.values():
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGKILL)
                node.process.wait(timeout=30)

    def logs(self) -> str:
        return "\n".join(f"--- node {i}\n{n.log()[-3000:]}" for i, n in sorted(self.nodes.items()))


class Proxy:
    """A TCP proxy in front of one node: forwards both ways, and on demand cuts every
    connection or holds the bytes coming back from the node after a budget."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self.upstream = (host, int(port))
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.budget: int | None = None  # bytes from the node still allowed through; None: no limit
        self.forwarded = 0
        self.cuts = 0
        self._lock = threading.Condition()
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, metered: bool) -> None:
        try:
            while True:
                if metered:
                    with self._lock:
                        self._lock.wait_for(lambda: self.budget is None or self.budget > 0 or self._closed)
                        allowed = 256 * 1024 if self.budget is None else min(self.budget, 256 * 1024)
                else:
                    allowed = 256 * 1024
                data = source.recv(allowed)
                if not data:
                    break
                sink.sendall(data)
                if metered:
                    with self._lock:
                        self.forwarded += len(data)
                        if self.budget is not None:
                            self.budget -= len(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def hold_after(self, count: int | None) -> None:
        with self._lock:
            self.budget = count
            self._lock.notify_all()

    def cut(self) -> None:
        """Close every open connection, as a network failure would (new ones are accepted)."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
            self.cuts += 1
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self._closed = True
        self.hold_after(None)
        self.listener.close()
        self.cut()


def load_state(cluster: Cluster, total_bytes: int, value_bytes: int = MIB, prefix: str = "k") -> dict[str, bytes]:
    """Put ``total_bytes`` of values through the cluster; the acknowledged key -> value map."""
    from simulator import KeyValueStore

    written = {}
    for number in range(-(-total_bytes // value_bytes)):
        key = f"{prefix}{number:05d}"
        value = (key.encode() * (value_bytes // len(key) + 1))[:value_bytes]
        reply = cluster.client.propose(KeyValueStore.put(key, value))
        assert reply.ok and reply.result == "ok", reply
        written[key] = value
    return written

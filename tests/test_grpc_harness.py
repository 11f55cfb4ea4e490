"""Real node processes for the gRPC tests: start, kill -9, restart, wait on conditions, a TCP proxy
(the project's fault proxy, driven from these synchronous tests).

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
import trio

from transports.grpc import ClusterClient
from transports.proxy import open_fault_proxy

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
    """A TCP proxy in front of one node, for these synchronous tests: the project's fault
    proxy (:meth:`transports.proxy.FaultProxy.forward`, one link) run by trio on a thread of
    its own. On demand it cuts every connection or holds the bytes coming back from the node
    after a budget; a cut keeps the hold (new connections are held as the old ones were)."""

    LINK = (0, 1)  # the one link this proxy carries: whoever connects -> the node

    def __init__(self, upstream: str) -> None:
        ready = threading.Event()
        self._token = None
        self._stop = None

        async def run() -> None:
            async with open_fault_proxy() as proxy:
                self._proxy = proxy
                self.address = await proxy.forward(*self.LINK, upstream)
                self._token, self._stop = trio.lowlevel.current_trio_token(), trio.Event()
                ready.set()
                await self._stop.wait()

        self._thread = threading.Thread(target=trio.run, args=(run,), daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError(f"the fault proxy in front of {upstream} did not start")

    def _call(self, fn, *args):
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    @property
    def budget(self) -> int | None:
        """Bytes from the node still allowed through; ``None``: no limit."""
        return self._call(lambda: self._proxy.table.link(*self.LINK).back_allowance)

    def hold_after(self, count: int | None) -> None:
        table = self._proxy.table
        self._call(lambda: table.release(*self.LINK) if count is None else table.hold_back_after(*self.LINK, count))

    def cut(self) -> None:
        """Close every open connection, as a network failure would (new ones are accepted)."""
        def cut() -> None:
            table = self._proxy.table
            budget = table.link(*self.LINK).back_allowance
            table.cut(*self.LINK)
            if budget is not None:
                table.hold_back_after(*self.LINK, budget)
        self._call(cut)

    def close(self) -> None:
        try:
            self._call(self._stop.set)
        except trio.RunFinishedError:
            pass
        self._thread.join(30)


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

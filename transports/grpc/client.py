"""A small client of a node cluster's control service that follows the leader.

Theory of operation. The client knows the cluster's addresses
(``--cluster 1=HOST:PORT,...``). It sends a request to the node it believes
leads (at first, any); a node that does not lead answers ``ok=False`` with a
leader hint (id and address), and the client retries there. With no hint
(an election is going on) or an unreachable node, it tries the next address
after a short back-off, until ``timeout`` seconds have passed; then it raises
:class:`ClusterUnavailableError` naming the last reason. Writes are answered
once applied; reads are linearizable (ReadIndex, see ``NodeServer.get``), so a value
that a put returned for is never missing from a later get.

Commands are the state machine's bytes (``KeyValueStore.put(key, value)``
for the default one): this layer does not know the application.

Synchronous on purpose: it is used by the command line and by tests, not
inside a node.
"""

from __future__ import annotations

import time

import grpc

from .links import channel_options
from .proto import control_pb2 as cpb
from .proto import control_pb2_grpc


class ClusterUnavailableError(Exception):
    """No node accepted the request in time; the message says the last reason."""


class ClusterClient:
    """See the module docstring. Close it (or use ``with``) to close its channels."""

    def __init__(self, addresses: dict[int, str], *, timeout: float = 30.0, rpc_timeout: float = 10.0) -> None:
        if not addresses:
            raise ValueError("at least one node address expected")
        self.addresses = dict(addresses)
        self.timeout = timeout
        self.rpc_timeout = rpc_timeout
        self.leader: int | None = None
        self._channels: dict[str, grpc.Channel] = {}

    def __enter__(self) -> ClusterClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    def stub(self, address: str) -> control_pb2_grpc.ControlStub:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = grpc.insecure_channel(address, options=channel_options())
        return control_pb2_grpc.ControlStub(channel)

    def status(self, node_id: int, *, with_digest: bool = False) -> cpb.NodeStatus:
        return self.stub(self.addresses[node_id]).Status(cpb.StatusRequest(with_digest=with_digest),
                                                         timeout=self.rpc_timeout)

    def _leader_call(self, call):
        """Run ``call(stub)`` on the leader, following hints; the first reply with ok=True."""
        deadline = time.monotonic() + self.timeout
        order = sorted(self.addresses)
        attempt, reason = 0, "no node tried"
        while time.monotonic() < deadline:
            node = self.leader if self.leader in self.addresses else order[attempt % len(order)]
            address = self.addresses[node]
            try:
                reply = call(self.stub(address))
            except grpc.RpcError as error:
                reason = f"node {node} at {address}: {error.code().name.lower()}"
                self.leader = None
                attempt += 1
                time.sleep(0.1)
                continue
            if reply.ok:
                self.leader = node
                return reply
            reason = f"node {node}: {reply.error}"
            if reply.leader_id and reply.leader_id != node:
                if reply.leader_address:
                    self.addresses.setdefault(reply.leader_id, reply.leader_address)
                self.leader = reply.leader_id
                continue
            self.leader = None
            attempt += 1
            time.sleep(0.2)  # an election is going on: give it time
        raise ClusterUnavailableError(f"no leader accepted the request within {self.timeout:g} s; last: {reason}")

    def propose(self, command: bytes) -> cpb.ProposeReply:
        return self._leader_call(lambda stub: stub.Propose(cpb.ProposeRequest(command=command),
                                                           timeout=self.rpc_timeout))

    def get(self, key: str) -> bytes | None:
        reply = self._leader_call(lambda stub: stub.Get(cpb.GetRequest(key=key), timeout=self.rpc_timeout))
        return bytes(reply.value) if reply.found else None

    def add_node(self, node_id: int, address: str, *, as_learner: bool) -> cpb.MembershipReply:
        reply = self._leader_call(lambda stub: stub.AddNode(
            cpb.AddNodeRequest(node_id=node_id, address=address, as_learner=as_learner), timeout=self.rpc_timeout))
        self.addresses.setdefault(node_id, address)
        return reply

    def remove_node(self, node_id: int) -> cpb.MembershipReply:
        return self._leader_call(lambda stub: stub.RemoveNode(cpb.RemoveNodeRequest(node_id=node_id),
                                                              timeout=self.rpc_timeout))

"""Named events of a node process: one log line each, and a counter each.

Every fault a node meets is reported under a fixed name, so an operator
reads one line and a test reads one counter (through the control service's
``Status.counters``) instead of parsing prose:

=====================  =================================================
``peer unreachable``   a send to a peer failed (logged once per outage)
``peer reachable``     the first successful send after an outage
``garbage from peer``  bytes that are not a valid raftsim.v1 message
``stream cut``         a snapshot stream ended before its chunks did
``checksum failed``    a chunk whose checksum did not match its data
``chunk refused``      any other chunk the bookkeeping refused (gap...)
``digest failed``      a complete snapshot whose digest did not match
``transfer resumed``   a receiver asked again from its verified offset
``snapshot installed`` a snapshot passed its digest and went to Raft
``role changed``       follower/candidate/leader, with term and leader
``port in use``        the listen address could not be bound
``send queue full``    a message dropped because a peer is too slow
=====================  =================================================
"""

from __future__ import annotations

import logging
from collections import Counter

PEER_UNREACHABLE = "peer unreachable"
PEER_REACHABLE = "peer reachable"
GARBAGE = "garbage from peer"
STREAM_CUT = "stream cut"
CHECKSUM_FAILED = "checksum failed"
CHUNK_REFUSED = "chunk refused"
DIGEST_FAILED = "digest failed"
TRANSFER_RESUMED = "transfer resumed"
TRANSFER_STARTED = "transfer started"
SNAPSHOT_INSTALLED = "snapshot installed"
SNAPSHOT_CREATED = "snapshot created"
SNAPSHOT_OFFERED = "snapshot offered"
SNAPSHOT_SERVED = "snapshot served"
ROLE_CHANGED = "role changed"
PORT_IN_USE = "port in use"
SEND_QUEUE_FULL = "send queue full"
MEMBERSHIP_CHANGED = "membership changed"
STARTED = "started"
STOPPING = "stopping"


class EventLog:
    """Logs ``name: detail`` at INFO (WARNING for faults) and counts each name."""

    FAULTS = frozenset({PEER_UNREACHABLE, GARBAGE, STREAM_CUT, CHECKSUM_FAILED, CHUNK_REFUSED,
                        DIGEST_FAILED, PORT_IN_USE, SEND_QUEUE_FULL})

    def __init__(self, node_id: int, logger: logging.Logger | None = None) -> None:
        self.node_id = node_id
        self.logger = logger or logging.getLogger(f"raftsim.node.{node_id}")
        self.counts: Counter[str] = Counter()

    def __call__(self, name: str, detail: str = "", *, log: bool = True) -> None:
        self.counts[name] += 1
        if log:
            level = logging.WARNING if name in self.FAULTS else logging.INFO
            self.logger.log(level, "node %d %s%s", self.node_id, name, f": {detail}" if detail else "")

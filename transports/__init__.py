"""Layer 2: how bytes move between the nodes of a simulated cluster.

``InMemoryClusterTransport`` carries Raft messages between nodes of one trio
process over memory channels, with per-link latency, bandwidth, loss,
duplication and reordering, in a deterministic order. The snapshot transfer
modes (``Embedded``, ``Streaming``, ``Auto``) plug in here.
"""

from .chunk_faults import ChunkFault
from .in_memory import InMemoryClusterTransport
from .link_statistics import LinkStatistics, TransportStatistics
from .links import Constant, Exponential, LinkConfig, Uniform
from .modes import AUTO_THRESHOLD, Auto, DelegatedStreaming, Embedded, FetchSnapshot, SnapshotMode, Streaming
from .policies import POLICIES, policy
from .streaming import (
    Outcome,
    SnapshotAbort,
    SnapshotAck,
    SnapshotChunk,
    SnapshotRequest,
    TransferProgress,
)

__all__ = [
    "AUTO_THRESHOLD",
    "Auto",
    "ChunkFault",
    "Constant",
    "Embedded",
    "SnapshotAbort",
    "SnapshotAck",
    "SnapshotChunk",
    "SnapshotMode",
    "SnapshotRequest",
    "DelegatedStreaming",
    "FetchSnapshot",
    "Streaming",
    "TransferProgress",
    "Exponential",
    "InMemoryClusterTransport",
    "LinkConfig",
    "LinkStatistics",
    "Outcome",
    "POLICIES",
    "TransportStatistics",
    "Uniform",
    "policy",
]

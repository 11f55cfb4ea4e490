"""Out-of-band snapshot streaming: messages, transfer bookkeeping, and each node's endpoint."""

from .endpoint import StreamHost, StreamingEndpoint, StreamTimer
from .messages import (
    STREAM_MESSAGES,
    SnapshotAbort,
    SnapshotAck,
    SnapshotChunk,
    SnapshotRequest,
    chunk_checksum,
)
from .protocol import (
    IncomingTransfer,
    Outcome,
    OutgoingTransfer,
    SnapshotOffer,
    TransferProgress,
    Verdict,
)
from .registry import TransferRecord, TransferRegistry

__all__ = [
    "STREAM_MESSAGES",
    "IncomingTransfer",
    "OutgoingTransfer",
    "Outcome",
    "SnapshotAbort",
    "SnapshotAck",
    "SnapshotChunk",
    "SnapshotOffer",
    "SnapshotRequest",
    "StreamHost",
    "StreamTimer",
    "StreamingEndpoint",
    "TransferProgress",
    "TransferRecord",
    "TransferRegistry",
    "Verdict",
    "chunk_checksum",
]

"""Layer 0: a sans-IO Raft core modelled on raft-rs / etcd raft.

Pure logic over stdlib and attrs: no trio, no clock, no files, no global
random. Time is ticks; randomness is a ``random.Random`` handed in. The
public names are re-exported from :mod:`simulator`.
"""

from . import defects
from .config import Config
from .errors import (
    CompactedError,
    ConfChangePendingError,
    ConfigError,
    InvalidConfChangeError,
    ProposalDroppedError,
    RaftError,
    ReadyMisuseError,
    RequestSnapshotDroppedError,
    SnapshotOutOfDateError,
    SnapshotTemporarilyUnavailableError,
    StorageError,
    UnavailableError,
)
from .membership import (
    ConfChangeSingle,
    ConfChangeTransition,
    ConfChangeV2,
    changed_conf_state,
    conf_change_entry,
    decode_conf_change,
)
from .messages import (
    CAMPAIGN_TRANSFER,
    INVALID_ID,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)
from .progress import ProgressState
from .role import Role
from .raw_node import (
    PeerProgress,
    RaftStatistics,
    RawNode,
    Ready,
    SnapshotStatus,
    SoftState,
)
from .read_only import ReadOnlyOption, ReadState
from .snapshot_storage import MemStorageWithSnapshot, SnapshotDataStore, SnapshotDigests, snapshot_digest
from .storage import MemStorage, RaftState, Storage

__all__ = [
    "CAMPAIGN_TRANSFER",
    "INVALID_ID",
    "CompactedError",
    "ConfChange",
    "ConfChangePendingError",
    "ConfChangeSingle",
    "ConfChangeTransition",
    "ConfChangeType",
    "ConfChangeV2",
    "ConfState",
    "Config",
    "ConfigError",
    "Entry",
    "EntryType",
    "HardState",
    "InvalidConfChangeError",
    "MemStorage",
    "MemStorageWithSnapshot",
    "Message",
    "MessageType",
    "PeerProgress",
    "ProgressState",
    "ProposalDroppedError",
    "RaftError",
    "RaftState",
    "RaftStatistics",
    "RawNode",
    "ReadOnlyOption",
    "ReadState",
    "Ready",
    "ReadyMisuseError",
    "RequestSnapshotDroppedError",
    "Role",
    "Snapshot",
    "SnapshotDataStore",
    "SnapshotMetadata",
    "SnapshotOutOfDateError",
    "SnapshotStatus",
    "SnapshotTemporarilyUnavailableError",
    "SoftState",
    "Storage",
    "StorageError",
    "UnavailableError",
    "changed_conf_state",
    "conf_change_entry",
    "decode_conf_change",
    "defects",
    "snapshot_digest",
    "SnapshotDigests",
]

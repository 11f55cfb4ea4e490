"""Errors of the Raft core and its storage, mirroring raft-rs ``Error`` / ``StorageError``."""

from __future__ import annotations


class RaftError(Exception):
    """Base of every error the Raft core raises on purpose."""


class StorageError(RaftError):
    """Base of errors a :class:`~simulator.raft.storage.Storage` raises."""


class CompactedError(StorageError):
    """The requested index is older than the first index kept: it was compacted away."""


class UnavailableError(StorageError):
    """The requested index is newer than the last index in storage."""


class SnapshotOutOfDateError(StorageError):
    """A snapshot older than (or equal to) the one storage already has was offered."""


class SnapshotTemporarilyUnavailableError(StorageError):
    """The snapshot is being made or fetched; the leader should try again later."""


class ProposalDroppedError(RaftError):
    """A proposal was not accepted: no leader known, a leader transfer is under way,
    or this node is not a member of the cluster."""


class ConfChangePendingError(RaftError):
    """A membership change was proposed while another is not yet applied."""


class InvalidConfChangeError(RaftError):
    """A membership change that cannot apply to the current configuration."""


class RequestSnapshotDroppedError(RaftError):
    """``request_snapshot`` refused: this node leads, knows no leader, or already asked."""


class ReadyMisuseError(RaftError):
    """``advance`` called without, or with a different, ``Ready`` than ``ready()`` returned."""


class ConfigError(RaftError, ValueError):
    """A :class:`~simulator.raft.config.Config` value out of range."""

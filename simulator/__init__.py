"""raftsim: a complete Raft cluster in one Python process, with pluggable snapshot transfer.

This package root re-exports the public API; the modules behind it are
private. Layer 0, the sans-IO Raft core, lives in :mod:`simulator.raft`;
:mod:`simulator.testing` is a synchronous harness that drives a network of
``RawNode`` s without trio; :class:`Cluster` runs nodes as trio tasks on
virtual time.
"""

from ._version import __version__
from .client import Client, LivenessError, ProposalResult, ProposalTimeoutError
from .cluster import Cluster, run
from .codec import DecodeError
from .invariants import InvariantChecker, InvariantViolation, NodeView
from .monitor import InvariantMonitor
from .node import CompactionPolicy
from .raft import *  # noqa: F403 - the core's public names are ours
from .raft import __all__ as _raft_all
from .state_machines import KeyValueStore, StateMachine, WorkflowExecutor
from .trace import Trace, TraceRecord, read_jsonl

__all__ = [
    "__version__",
    "Client",
    "Cluster",
    "CompactionPolicy",
    "DecodeError",
    "InvariantChecker",
    "InvariantMonitor",
    "InvariantViolation",
    "KeyValueStore",
    "LivenessError",
    "NodeView",
    "ProposalResult",
    "ProposalTimeoutError",
    "StateMachine",
    "Trace",
    "TraceRecord",
    "WorkflowExecutor",
    "read_jsonl",
    "run",
    *_raft_all,
]

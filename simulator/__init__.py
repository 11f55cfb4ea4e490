"""raftsim: a complete Raft cluster in one Python process, with pluggable snapshot transfer.

This package root re-exports the public API; the modules behind it are
private. Layer 0, the sans-IO Raft core, lives in :mod:`simulator.raft`;
:mod:`simulator.testing` is a synchronous harness that drives a network of
``RawNode`` s without trio; :class:`Cluster` runs nodes on virtual time.

The layer-3 names (``Cluster`` and friends) load on first use: the
``transports`` layer imports ``simulator.raft``, which runs this file, and
an eager import of the cluster here would import ``transports`` back while
it is still half loaded.
"""

from importlib import import_module

from ._version import __version__
from .raft import *  # noqa: F403 - the core's public names are ours
from .raft import __all__ as _raft_all

_LAZY = {
    "Client": ".client",
    "LivenessError": ".client",
    "ProposalResult": ".client",
    "ProposalTimeoutError": ".client",
    "Cluster": ".cluster",
    "run": ".cluster",
    "DecodeError": ".codec",
    "InvariantChecker": ".invariants",
    "InvariantViolation": ".invariants",
    "NodeView": ".invariants",
    "InvariantMonitor": ".monitor",
    "AddNode": ".programs",
    "Compact": ".programs",
    "Crash": ".programs",
    "FailChunk": ".programs",
    "Heal": ".programs",
    "Isolate": ".programs",
    "OneWay": ".programs",
    "Partition": ".programs",
    "Pause": ".programs",
    "Program": ".programs",
    "ProgramRun": ".programs",
    "Propose": ".programs",
    "RemoveNode": ".programs",
    "Restart": ".programs",
    "Resume": ".programs",
    "TransferLeader": ".programs",
    "Wait": ".programs",
    "run_program": ".programs",
    "Counterexample": ".exploration",
    "SearchSpace": ".exploration",
    "fault_programs": ".exploration",
    "seeds": ".exploration",
    "search": ".exploration",
    "run_example": ".exploration",
    "scenario_source": ".exploration",
    "CompactionPolicy": ".node",
    "PysyncobjCluster": ".engines",
    "PysyncobjKeyValueStore": ".engines",
    "PysyncobjWorkarounds": ".engines",
    "PysyncobjWorkflowExecutor": ".engines",
    "KeyValueStore": ".state_machines",
    "StateMachine": ".state_machines",
    "WorkflowExecutor": ".state_machines",
    "DiskSnapshotStore": ".snapshots",
    "MemorySnapshotStore": ".snapshots",
    "PartialSnapshot": ".snapshots",
    "SnapshotChunkError": ".snapshots",
    "SnapshotCorruptError": ".snapshots",
    "SnapshotDigestError": ".snapshots",
    "SnapshotExistsError": ".snapshots",
    "SnapshotNotFoundError": ".snapshots",
    "SnapshotStore": ".snapshots",
    "SnapshotStoreError": ".snapshots",
    "SnapshotWriter": ".snapshots",
    "StoredSnapshot": ".snapshots",
    # Cloud stores: their modules import boto3 / google-cloud-storage (the cloud extra),
    # so they load only when asked for; the rest of the package works without them.
    "S3SnapshotStore": ".snapshots.s3",
    "GCSSnapshotStore": ".snapshots.gcs",
    "ReplicatedSnapshotStore": ".snapshots",
    "ReplicaStatus": ".snapshots",
    "FaultyStore": ".snapshots",
    "RetryPolicy": ".snapshots",
    "ObjectStoreError": ".snapshots",
    "BucketNotFoundError": ".snapshots",
    "CredentialsError": ".snapshots",
    "ObjectStoreUnavailableError": ".snapshots",
    "CatchUp": ".catch_up",
    "load_state": ".catch_up",
    "measure_catch_up": ".catch_up",
    "sweep_catch_up": ".catch_up",
    "NodeState": ".plotting",
    "NodeTable": ".plotting",
    "node_table": ".plotting",
    "plot_catch_up": ".plotting",
    "plot_memory": ".plotting",
    "plot_messages": ".plotting",
    "plot_peak_memory": ".plotting",
    "plot_roles": ".plotting",
    "plot_transfers": ".plotting",
    "memory_timeline": ".records",
    "records_of": ".records",
    "to_dataframe": ".records",
    "to_dicts": ".records",
    "transfer_dicts": ".records",
    "Trace": ".trace",
    "TraceRecord": ".trace",
    "read_jsonl": ".trace",
}

__all__ = ["__version__", *sorted(_LAZY), *_raft_all]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'simulator' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

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
    "Client": ".cluster.client",
    "LivenessError": ".cluster.client",
    "ProposalResult": ".cluster.client",
    "ProposalTimeoutError": ".cluster.client",
    "Cluster": ".cluster.cluster",
    "run": ".cluster.cluster",
    "DecodeError": ".machines.codec",
    "InvariantChecker": ".checks.invariants",
    "InvariantViolation": ".checks.invariants",
    "NodeView": ".checks.invariants",
    "InvariantMonitor": ".checks.monitor",
    "AddNode": ".explore.programs",
    "ChangeMembership": ".explore.programs",
    "ClockDrift": ".explore.programs",
    "ClockJump": ".explore.programs",
    "Compact": ".explore.programs",
    "Crash": ".explore.programs",
    "FailChunk": ".explore.programs",
    "Heal": ".explore.programs",
    "Isolate": ".explore.programs",
    "OneWay": ".explore.programs",
    "Partition": ".explore.programs",
    "Pause": ".explore.programs",
    "Program": ".explore.programs",
    "ProgramRun": ".explore.programs",
    "Propose": ".explore.programs",
    "Read": ".explore.programs",
    "RemoveNode": ".explore.programs",
    "Restart": ".explore.programs",
    "Resume": ".explore.programs",
    "TransferLeader": ".explore.programs",
    "Wait": ".explore.programs",
    "run_program": ".explore.programs",
    "DamageStore": ".explore.damage",
    "DiskError": ".explore.disk_faults",
    "FillDisk": ".explore.disk_faults",
    "FlipBitOnRead": ".explore.disk_faults",
    "FreeDisk": ".explore.disk_faults",
    "LostFsync": ".explore.disk_faults",
    "MisdirectedWrite": ".explore.disk_faults",
    "Counterexample": ".explore.search",
    "SearchSpace": ".explore.search",
    "ProposeCommands": ".explore.user_system",
    "linearizable": ".explore.user_system",
    "run_user_program": ".explore.user_system",
    "fault_programs": ".explore.search",
    "seeds": ".explore.search",
    "search": ".explore.search",
    "run_example": ".explore.search",
    "scenario_source": ".explore.search",
    "FailStoreRead": ".explore.swarm",
    "faulty_memory_stores": ".explore.swarm",
    "CompactionPolicy": ".cluster.node",
    "ReadResult": ".cluster.reads",
    "ReadTimeoutError": ".cluster.reads",
    "Param": ".scenario.params",
    "PolicyResult": ".scenario.policies",
    "compare_policies": ".scenario.policies",
    "PysyncobjCluster": ".engines",
    "PysyncobjKeyValueStore": ".engines",
    "PysyncobjWorkarounds": ".engines",
    "PysyncobjWorkflowExecutor": ".engines",
    "KeyValueStore": ".machines.state_machines",
    "StateMachine": ".machines.state_machines",
    "WorkflowExecutor": ".machines.state_machines",
    "DiskSnapshotStore": ".snapshots",
    "MemorySnapshotStore": ".snapshots",
    "PartialSnapshot": ".snapshots",
    "SnapshotChunkError": ".snapshots",
    "SnapshotCorruptError": ".snapshots",
    "SnapshotDigestError": ".snapshots",
    "SnapshotExistsError": ".snapshots",
    "SnapshotNotFoundError": ".snapshots",
    "SnapshotStore": ".snapshots",
    "ResumableWriter": ".snapshots",
    "ClientOperation": ".checks.history",
    "OperationLog": ".checks.history",
    "HistoryVerdict": ".checks.linearizability",
    "KVOperation": ".checks.linearizability",
    "check_kv_history": ".checks.linearizability",
    "check_linearizability": ".cluster.kv_history",
    "kv_operations": ".cluster.kv_history",
    "plot_history": ".observe.plotting.history",
    "snapshot_chunks_of": ".machines.contracts",
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
    "CatchUp": ".cluster.catch_up",
    "load_state": ".cluster.catch_up",
    "measure_catch_up": ".cluster.catch_up",
    "sweep_catch_up": ".cluster.catch_up",
    "NodeState": ".observe.plotting",
    "NodeTable": ".observe.plotting",
    "node_table": ".observe.plotting",
    "plot_catch_up": ".observe.plotting",
    "plot_memory": ".observe.plotting",
    "plot_messages": ".observe.plotting",
    "plot_peak_memory": ".observe.plotting",
    "plot_policies": ".observe.plotting",
    "plot_roles": ".observe.plotting",
    "plot_transfers": ".observe.plotting",
    "to_html": ".observe.html",
    "write_html": ".observe.html",
    "LogState": ".observe.logs",
    "logs_at": ".observe.logs",
    "memory_timeline": ".observe.records",
    "records_of": ".observe.records",
    "to_dataframe": ".observe.records",
    "to_dicts": ".observe.records",
    "transfer_dicts": ".observe.records",
    "Trace": ".observe.trace",
    "TraceRecord": ".observe.trace",
    "read_jsonl": ".observe.trace",
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

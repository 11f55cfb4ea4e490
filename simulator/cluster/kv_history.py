"""A cluster's client history read as key-value operations, and checked for linearizability.

``cluster.history`` records operations as clients saw them (command bytes,
keys, results); this module turns those of a :class:`KeyValueStore` into
:class:`~simulator.checks.linearizability.KVOperation` s and hands them to the
checker::

    verdict = check_linearizability(cluster)
    assert verdict.linearizable, verdict.describe()

Commands that are not key-value commands (another machine's, membership
changes) and commands the store refused (``error: ...`` results: they
changed nothing) are left out. Writes still in flight, or whose client timed
out, have an unknown outcome; reads that never answered are left out.
Stale local reads (``cluster.stale_read``) are left out unless
``include_stale``: they are not meant to be linearizable, and including them
shows the checker catching what ReadIndex prevents.
"""

from __future__ import annotations

from ..checks.history import FAILED, OK, ClientOperation, OperationLog
from ..checks.linearizability import DELETE, GET, PUT, HistoryVerdict, KVOperation, check_kv_history
from ..machines.codec import DecodeError, Reader


def _decode(command: bytes) -> tuple[str, str, bytes | None] | None:
    try:
        reader = Reader(command, "key-value command")
        op, key = reader.text(), reader.text()
        value = reader.bytes() if op == "put" else None
        reader.expect_end()
    except DecodeError:
        return None
    return (op, key, value) if op in (PUT, DELETE) else None


def _kv_operation(operation: ClientOperation, include_stale: bool) -> KVOperation | None:
    if operation.outcome == FAILED:
        return None
    finished = operation.outcome == OK
    if operation.kind in ("read", "stale_read"):
        if not finished or (operation.kind == "stale_read" and not include_stale):
            return None
        return KVOperation(operation.op_id, operation.client, GET, operation.argument, operation.result,
                           operation.invoked, operation.completed)
    if operation.kind != "command":
        return None
    decoded = _decode(operation.argument)
    if decoded is None:
        return None
    op, key, value = decoded
    result = operation.result if finished else None
    if isinstance(result, str) and result.startswith("error"):
        return None
    return KVOperation(operation.op_id, operation.client, op, key, value, operation.invoked,
                       operation.completed if finished else None, result=result if op == DELETE else None)


def kv_operations(history: OperationLog, *, include_stale: bool = False) -> list[KVOperation]:
    """The key-value operations of ``history`` (see the module docstring)."""
    converted = (_kv_operation(operation, include_stale) for operation in history.operations)
    return [operation for operation in converted if operation is not None]


def check_linearizability(cluster_or_history, *, include_stale: bool = False) -> HistoryVerdict:
    """Check the key-value history of a cluster (or of an ``OperationLog``) for linearizability."""
    history = getattr(cluster_or_history, "history", cluster_or_history)
    return check_kv_history(kv_operations(history, include_stale=include_stale))

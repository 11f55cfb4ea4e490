"""A run as plain data, for your own analysis: trace records, memory over time.

Every plot and table in :mod:`simulator.plotting` reads a run through
:func:`records_of`, which accepts whatever you have at hand: a finished
``Cluster``, its ``Trace``, records loaded with :func:`simulator.read_jsonl`,
or the path of a JSONL trace file. :func:`to_dicts` flattens records into one
dict per event (``time``, ``node``, ``seq``, ``kind`` and the event's own
fields), and :func:`to_dataframe` makes a pandas ``DataFrame`` of them when
pandas is installed (the ``notebooks`` extra installs it)::

    frame = to_dataframe(cluster)
    frame[frame.kind == "send"].groupby("type").size()

Fields an event does not have are missing from its dict and ``NaN`` in the
frame, since events of different kinds carry different fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from os import PathLike

import attrs

from .trace import Trace, TraceRecord, read_jsonl

#: The columns every record has, first in a frame; the events' own fields follow.
BASE_COLUMNS = ("time", "node", "seq", "kind")


def records_of(source) -> list[TraceRecord]:
    """The trace records of ``source``: a cluster, a ``Trace``, records, or a JSONL path."""
    if isinstance(source, (str, PathLike)):
        return read_jsonl(source)
    trace = getattr(source, "trace", None)
    if isinstance(trace, Trace):  # a Cluster, or anything that keeps its trace there
        return trace.records
    if isinstance(source, Trace):
        return source.records
    if isinstance(source, Iterable):
        records = list(source)
        for position, record in enumerate(records):
            if not isinstance(record, TraceRecord):
                raise TypeError(
                    f"item {position} is a {type(record).__name__}, expected a TraceRecord "
                    "(from cluster.trace or simulator.read_jsonl)"
                )
        return records
    raise TypeError(
        f"cannot read trace records from a {type(source).__name__}; expected a Cluster, a Trace, "
        "a list of TraceRecord, or the path of a JSONL trace file"
    )


def to_dicts(source) -> list[dict[str, object]]:
    """Every record of ``source`` (see :func:`records_of`) as a dict, in trace order."""
    return [record.to_dict() for record in records_of(source)]


def to_dataframe(source):
    """Every record of ``source`` as a row of a pandas ``DataFrame`` (pandas must be installed)."""
    try:
        import pandas
    except ImportError:
        raise ImportError(
            "to_dataframe() needs pandas, which is not installed; install it with "
            "pip install pandas (or pip install 'raftsim[notebooks]'), or use to_dicts()"
        ) from None
    rows = to_dicts(source)
    columns = list(BASE_COLUMNS)
    seen = set(columns)
    for row in rows:  # field columns in order of first appearance: stable across runs
        for name in row:
            if name not in seen:
                seen.add(name)
                columns.append(name)
    return pandas.DataFrame.from_records(rows, columns=columns)



def memory_timeline(cluster) -> dict[int, list[tuple[float, int]]]:
    """Per node of a cluster: ``(time, bytes)`` each time its snapshot bytes in memory changed.

    Memory is measured by the cluster, not recorded in the trace, so this
    needs the cluster itself (finished or running). It starts at zero bytes
    at time 0; ``Cluster.snapshot_memory`` gives the current figure and the peak.
    """
    runners = getattr(cluster, "runners", None)
    if runners is None:
        raise TypeError(f"memory_timeline needs a Cluster, got a {type(cluster).__name__}")
    return {node: list(runner.snapshots.memory.history) for node, runner in sorted(runners.items())}


def transfer_dicts(cluster) -> list[dict[str, object]]:
    """``cluster.transfers()`` as dicts (one row of a table each), outcome as its name."""
    rows = []
    for transfer in cluster.transfers():
        row = attrs.asdict(transfer)
        row["outcome"] = transfer.outcome.value
        rows.append(row)
    return rows

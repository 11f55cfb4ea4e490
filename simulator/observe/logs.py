"""Each node's Raft log over time (the term of every entry), told by the trace alone.

The trace does not record entries, yet it records enough to know their
terms, because Raft decides them in a few visible places:

* a node that becomes leader of term T appends one empty entry of term T
  (``role`` event), and every entry it adds later while leading is of term T
  too: an append it sends that reaches past its known log carries new
  entries of its own term; a commit past its known log (a cluster of one,
  which sends nothing) is of its term as well;
* an append message carries the entries of its sender's log after
  ``index``, whose terms the sender's log (known at *send* time) gives;
* a follower applies a delivered append the way Raft does: ignored if of a
  stale term or below its commit index, refused unless its log holds
  ``log_term`` at ``index``, otherwise a conflicting suffix is cut and the
  new entries are written;
* a committed entry has the same term in every log, so a commit past what
  a node was seen to receive (a trace without messages) is filled in from
  the entries other nodes committed;
* ``snapshot_installed`` replaces the log by a snapshot boundary,
  ``compaction`` moves the boundary up, ``commit`` and ``apply`` move the
  commit and applied indexes.

:func:`log_changes` replays this into a list of :class:`LogChange` steps
(what the HTML page replays in the browser), and :func:`logs_at` folds them
into each node's :class:`LogState` at a time. Nothing here reads a cluster:
a JSONL file of a run gives the same result as the run itself. A trace
recorded without messages (``record_messages=False``) has no appends, so
only leaders' own entries show.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence

import attrs

from .trace import CLUSTER, TraceRecord

#: Message types whose term a receiver does not adopt (pre-votes ask without campaigning).
_NO_TERM_ADOPTION = frozenset({"request_pre_vote", "request_pre_vote_response"})


@attrs.frozen
class LogChange:
    """One step of one node's log, at ``time``.

    ``kind`` is ``write`` (keep entries up to ``index``, then append
    ``terms``), ``snapshot`` (install: the log is the snapshot at ``index``
    of term ``term``, nothing after it), ``compact`` (entries up to ``index``
    are in the snapshot now, of term ``term``), ``commit`` or ``apply`` (that
    index moves to ``index``).
    """

    time: float
    node: int
    kind: str
    index: int
    terms: tuple[int, ...] = ()
    term: int = 0


@attrs.frozen
class LogState:
    """A node's log: entries after the snapshot boundary, with commit and applied indexes.

    ``terms[i]`` is the term of entry ``snapshot_index + 1 + i``.
    """

    snapshot_index: int
    snapshot_term: int
    terms: tuple[int, ...]
    commit: int
    applied: int

    @property
    def last_index(self) -> int:
        return self.snapshot_index + len(self.terms)

    def term(self, index: int) -> int | None:
        """The term of entry ``index``, or None if it is not in the log (nor the boundary)."""
        if index == self.snapshot_index:
            return self.snapshot_term
        if self.snapshot_index < index <= self.last_index:
            return self.terms[index - self.snapshot_index - 1]
        return None


@attrs.define
class _Log:
    snapshot_index: int = 0
    snapshot_term: int = 0
    terms: list[int] = attrs.Factory(list)
    commit: int = 0
    applied: int = 0
    term: int = 0  # the node's current term, for the stale-message rule

    @property
    def last(self) -> int:
        return self.snapshot_index + len(self.terms)

    def term_at(self, index: int) -> int | None:
        if index == self.snapshot_index:
            return self.snapshot_term
        if self.snapshot_index < index <= self.last:
            return self.terms[index - self.snapshot_index - 1]
        return None

    def write(self, after: int, terms: list[int]) -> tuple[int, tuple[int, ...]] | None:
        """Raft's append rule for entries ``after+1...``; the change made, if any."""
        for offset, term in enumerate(terms):
            index = after + 1 + offset
            if index <= self.snapshot_index:
                continue  # already in the snapshot
            known = self.term_at(index)
            if known == term:
                continue
            keep = index - 1
            del self.terms[keep - self.snapshot_index:]
            self.terms.extend(terms[offset:])
            return keep, tuple(terms[offset:])
        return None

    def state(self) -> LogState:
        return LogState(self.snapshot_index, self.snapshot_term, tuple(self.terms), self.commit, self.applied)


def _message_key(fields: dict, arrives) -> tuple:
    return (fields.get("from"), fields.get("to"), fields.get("index", 0), fields.get("entries", 0), arrives)


class LogReader:
    """Reads records one at a time and tells the log changes each one makes.

    The incremental form of :func:`log_changes`, for a view that follows a
    running cluster (``cluster.trace.listeners.append(reader.feed)``);
    :meth:`state` is each node's log so far.
    """

    def __init__(self) -> None:
        self._logs: dict[int, _Log] = defaultdict(_Log)
        self._leading: dict[int, int] = {}  # node -> the term it leads
        self._in_flight: dict[tuple, deque] = defaultdict(deque)  # append on the wire -> its entries' terms
        self._committed: dict[int, int] = {}  # index -> term of every entry known committed

    def state(self) -> dict[int, LogState]:
        return {node: log.state() for node, log in sorted(self._logs.items())}

    def _adopt(self, node: int, term: int) -> None:
        log = self._logs[node]
        if term > log.term:
            log.term = term
            self._leading.pop(node, None)

    def _grow(self, time: float, node: int, terms: list, changes: list) -> None:
        log = self._logs[node]
        if terms and None not in terms:
            changes.append(LogChange(time, node, "write", log.last, tuple(terms)))
            log.terms.extend(terms)

    def feed(self, record: TraceRecord) -> list[LogChange]:
        """The changes ``record`` makes (most records make none)."""
        kind, node, time = record.kind, record.node, record.time
        changes: list[LogChange] = []
        if node == CLUSTER:
            return changes
        log, leading = self._logs[node], self._leading
        if kind == "start":
            leading.pop(node, None)
            self._adopt(node, record.get("term", 0))
        elif kind == "role":
            self._adopt(node, record.get("term", 0))
            if record.get("role") == "leader":
                leading[node] = record.get("term", 0)
                self._grow(time, node, [leading[node]], changes)  # Raft's empty entry of the new term
            else:
                leading.pop(node, None)
        elif kind in ("send", "duplicate") and record.get("type") == "append":
            fields = dict(record.fields)
            after, count = fields.get("index", 0), fields.get("entries", 0)
            if node in leading and after + count > log.last:
                self._grow(time, node, [leading[node]] * (after + count - log.last), changes)
            terms = [log.term_at(index) for index in range(after + 1, after + count + 1)]
            self._in_flight[_message_key(fields, fields.get("arrives"))].append(terms)
        elif kind == "deliver":
            self._deliver(record, log, changes)
        elif kind == "snapshot_installed":
            index, term = record.get("index", 0), record.get("term", 0)
            log.snapshot_index, log.snapshot_term, log.terms = index, term, []
            log.commit, log.applied = max(log.commit, index), max(log.applied, index)
            changes.append(LogChange(time, node, "snapshot", index, term=term))
        elif kind == "compaction":
            index = record.get("first_index", 1) - 1
            if index > log.snapshot_index:
                term = log.term_at(index) or 0
                del log.terms[: index - log.snapshot_index]
                log.snapshot_index, log.snapshot_term = index, term
                changes.append(LogChange(time, node, "compact", index, term=term))
        elif kind == "commit":
            index = record.get("index", 0)
            if index > log.last:  # entries the trace did not show arriving
                if node in leading:  # a leader alone sends nothing: its entries are of its term
                    self._grow(time, node, [leading[node]] * (index - log.last), changes)
                else:  # messages not recorded: committed entries are the same everywhere
                    self._grow(time, node, [self._committed.get(at) for at in range(log.last + 1, index + 1)],
                               changes)
            for at in range(max(log.commit, log.snapshot_index) + 1, min(index, log.last) + 1):
                self._committed.setdefault(at, log.term_at(at))
            log.commit = index
            changes.append(LogChange(time, node, "commit", index))
        elif kind == "apply":
            log.applied = record.get("last", log.applied)
            changes.append(LogChange(time, node, "apply", log.applied))
        return changes

    def _deliver(self, record: TraceRecord, log: _Log, changes: list) -> None:
        fields = dict(record.fields)
        message_type, term = fields.get("type"), fields.get("term")
        if term is None:
            return  # the snapshot stream's own messages carry no Raft term
        stale = term < log.term
        if message_type not in _NO_TERM_ADOPTION:
            self._adopt(record.node, term)
        if message_type != "append":
            return
        waiting = self._in_flight.get(_message_key(fields, record.time))
        terms = waiting.popleft() if waiting else None
        after = fields.get("index", 0)
        if stale or terms is None or after < log.commit or None in terms:
            return  # stale, unknown, already committed there, or the sender's log was not known
        if after > log.last or log.term_at(after) != fields.get("log_term", 0):
            return  # refused: the log does not match at ``after``
        change = log.write(after, terms)
        if change is not None:
            changes.append(LogChange(record.time, record.node, "write", change[0], change[1]))


def log_changes(records: Sequence[TraceRecord]) -> list[LogChange]:
    """Every change of every node's log, in trace order; see the module docstring."""
    reader = LogReader()
    return [change for record in records for change in reader.feed(record)]


def replay(changes: Sequence[LogChange], until: float | None = None) -> dict[int, LogState]:
    """Each node's log after the ``changes`` up to time ``until`` (default: all of them)."""
    logs: dict[int, _Log] = defaultdict(_Log)
    for change in changes:
        if until is not None and change.time > until:
            break
        log = logs[change.node]
        if change.kind == "write":
            del log.terms[max(change.index - log.snapshot_index, 0):]
            log.terms.extend(change.terms)
        elif change.kind == "snapshot":
            log.snapshot_index, log.snapshot_term, log.terms = change.index, change.term, []
            log.commit, log.applied = max(log.commit, change.index), max(log.applied, change.index)
        elif change.kind == "compact":
            del log.terms[: change.index - log.snapshot_index]
            log.snapshot_index, log.snapshot_term = change.index, change.term
        elif change.kind == "commit":
            log.commit = change.index
        elif change.kind == "apply":
            log.applied = change.index
    return {node: log.state() for node, log in sorted(logs.items())}


def logs_at(records: Sequence[TraceRecord], time: float | None = None) -> dict[int, LogState]:
    """Each node's log at virtual ``time`` (default: the end of the trace)."""
    return replay(log_changes(records), time)

"""The trace: every event of a run as a structured record, in a replayable order.

Records are ``(virtual_time, node, seq, kind, fields)``. Within one virtual
instant, trio may run tasks in any order, so events are not numbered as
they arrive: each is filed under ``(round, phase, node)`` and the instant is
sorted (a stable sort: a node's events keep the order it recorded them in) and
numbered once time moves on. A round is the
stretch between two delivery batches of the transport (which happen only
when every task waits), so cause comes before effect. Within a round,
phases follow how it unfolds: scenario and fault actions (0), deliveries by
the transport (1), the nodes' reactions (2). Each node's own events come in
its own deterministic order, so the result is the same in every run with
the same seed.

The trace exports as JSONL (one object per line, keys in a fixed order) or
as narrated text, and ``sha256()`` hashes exactly the JSONL bytes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterator
from operator import itemgetter

import attrs

from ..raft import Message

SCENARIO, TRANSPORT, NODE = 0, 1, 2

#: ``json.dumps(body, separators=(",", ":"))`` without building an encoder per record
#: (dumps reuses one only for its default options); the same bytes, so the same hash.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=False)

#: The sort key of a pending event ``(round, phase, node, kind, fields)``.
_ROUND_PHASE_NODE = itemgetter(0, 1, 2)

#: ``node`` of events that belong to the whole cluster (faults, scenario steps).
CLUSTER = 0


@attrs.frozen
class TraceRecord:
    time: float
    node: int
    seq: int
    kind: str
    fields: tuple[tuple[str, object], ...]

    def get(self, name: str, default=None):
        return dict(self.fields).get(name, default)

    def to_json(self) -> str:
        body = {"t": self.time, "node": self.node, "seq": self.seq, "kind": self.kind}
        body.update(self.fields)
        return _COMPACT_JSON.encode(body)

    @classmethod
    def from_json(cls, line: str) -> TraceRecord:
        body = json.loads(line)
        if not isinstance(body, dict):
            raise ValueError(f"expected a JSON object, got {type(body).__name__}")
        try:
            time, node, seq, kind = body.pop("t"), body.pop("node"), body.pop("seq"), body.pop("kind")
        except KeyError as missing:
            raise ValueError(f"trace line lacks field {missing}; expected t, node, seq, kind") from None
        # A hand-edited or foreign file must fail here, in one line, not deep in a reader.
        if isinstance(time, bool) or not isinstance(time, (int, float)) or not math.isfinite(time) or time < 0:
            raise ValueError(f"field t must be a non-negative number of seconds, got {time!r}")
        for name, value in (("node", node), ("seq", seq)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"field {name} must be a whole number, got {value!r}")
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"field kind must be a non-empty text, got {kind!r}")
        return cls(float(time) if isinstance(time, int) else time, node, seq, kind, tuple(body.items()))

    def to_dict(self) -> dict[str, object]:
        """This record as a flat dict; an event field named like a base column
        (time, node, seq, kind) is renamed ``field_<name>`` so it cannot hide it."""
        row: dict[str, object] = {"time": self.time, "node": self.node, "seq": self.seq, "kind": self.kind}
        for name, value in self.fields:
            row[f"field_{name}" if name in row else name] = value
        return row

    def to_text(self) -> str:
        who = "cluster" if self.node == CLUSTER else f"n{self.node}"
        details = " ".join(f"{key}={value}" for key, value in self.fields)
        return f"{self.time:12.6f} {who:>7} {self.kind:<18} {details}".rstrip()


def message_fields(message) -> dict[str, object]:
    """The parts of a message worth recording."""
    if type(message) is not Message:
        return _stream_fields(message)
    fields: dict[str, object] = {
        "type": message.msg_type._value_,  # the enum's value without its property call
        "from": message.from_,
        "to": message.to,
        "term": message.term,
    }
    if message.index or message.log_term:
        fields["index"] = message.index
        fields["log_term"] = message.log_term
    if message.entries:
        fields["entries"] = len(message.entries)
    if message.commit:
        fields["commit"] = message.commit
    if message.reject:
        fields["reject"] = True
    if message.snapshot is not None:
        fields["snapshot_index"] = message.snapshot.index
    fields["size"] = message.size
    return fields


def _stream_fields(message) -> dict[str, object]:
    fields: dict[str, object] = {"type": message.kind, "from": message.from_, "to": message.to}
    for name in ("snapshot_index", "offset", "total_size", "is_final", "installed", "reason"):
        value = getattr(message, name, None)
        if value is not None and value is not False:
            fields[name] = value
    data = getattr(message, "data", None)
    if data is not None:
        fields["bytes"] = len(data)
    fields["size"] = message.size
    return fields


class Trace:
    """Collects events; see the module docstring.

    ``record_messages=False`` leaves out per-message events (send, deliver,
    drop, duplicate) for long runs where only the story matters; drops are
    still counted by the transport.
    """

    def __init__(self, *, record_messages: bool = True, start_time: float = 0.0) -> None:
        self.record_messages = record_messages
        self.start_time = start_time
        # Published rows are plain tuples (time, node, seq, kind, fields); records,
        # JSON and the hash are built from them only when asked for.
        self._rows: list[tuple] = []
        self._records: list[TraceRecord] = []
        self._pending: list[tuple] = []
        self._pending_time: float | None = None
        self._round = 0
        self._hash = hashlib.sha256()
        self._hashed = 0
        self._last_now: float | None = None
        self._last_time = 0.0
        # The same for arrival times: the sends of one instant mostly share theirs, and
        # round(x, 9) is a correctly rounded decimal conversion (about 0.3 us a call).
        self._last_arrival: float | None = None
        self._last_arrives = 0.0
        self._clock = lambda: 0.0
        self.listeners: list = []

    # -- recording ------------------------------------------------------------

    def event(self, now: float, node: int, kind: str, phase: int = NODE, **fields) -> None:
        self._add(now, node, kind, phase, fields)

    def node_event(self, node: int, kind: str, **fields) -> None:
        """An event of ``node``'s own, now."""
        self._add(self._clock(), node, kind, NODE, fields)

    def _add(self, now: float, node: int, kind: str, phase: int, fields) -> None:
        if now != self._last_now:  # most events share their instant with the previous one
            self._last_now = now
            self._last_time = round(now - self.start_time, 9)
        time = self._last_time
        if time != self._pending_time:
            self.flush()
            self._pending_time = time
        self._pending.append((self._round, phase, node, kind, fields))

    def on_batch(self) -> None:
        """The transport starts or ends a batch of deliveries: a new round of the instant.

        Rounds keep cause before effect within one instant: scenario code that
        runs after a batch (a client woken by its reply, say) sorts after the
        nodes' reactions in that batch, not before them.
        """
        self._round += 1

    def _sorted_pending(self) -> list[tuple]:
        # Python's sort is stable: events of one (round, phase, node) keep the order they
        # were recorded in, which a per-node counter in the key would only repeat.
        return sorted(self._pending, key=_ROUND_PHASE_NODE)

    def flush(self) -> None:
        """Number and publish the events of the instant collected so far.

        Called when time moves on and when a run ends. Reading the trace does
        not call it, so looking mid-instant never changes what is recorded.
        """
        if not self._pending:
            return
        time = self._pending_time
        rows = self._rows
        if self.listeners:
            # One row at a time: a listener (the teaching pacer, a live view) may look
            # at the trace, and must see it as it was when its record was published.
            for _, _, node, kind, fields in self._sorted_pending():
                row = (time, node, len(rows) + 1, kind, fields)
                rows.append(row)
                for listener in self.listeners:
                    listener(_record(row))
        else:
            rows.extend([
                (time, node, seq, kind, fields)
                for seq, (_, _, node, kind, fields) in enumerate(self._sorted_pending(), len(rows) + 1)
            ])
        self._pending.clear()
        self._round = 0

    # -- transport observer ---------------------------------------------------

    def bind_clock(self, clock) -> None:
        """``clock()`` returns the current virtual time; the transport hooks use it."""
        self._clock = clock

    def clock(self) -> float:
        """The current (absolute) time, as the bound clock tells it."""
        return self._clock()

    # Message events keep the message itself and build their fields only when
    # the trace is read: most runs record far more than anyone reads.

    def on_send(self, message: Message, arrival: float) -> None:
        if self.record_messages:
            self._add(self._clock(), message.from_, "send", NODE,
                      _message_event(message, "arrives", self._arrives(arrival)))

    def on_drop(self, message: Message, reason: str) -> None:
        if self.record_messages:
            phase = TRANSPORT if reason == "destination down" else NODE
            node = message.to if phase == TRANSPORT else message.from_
            self._add(self._clock(), node, "drop", phase, _message_event(message, "reason", reason))

    def on_duplicate(self, message: Message, arrival: float) -> None:
        if self.record_messages:
            self._add(self._clock(), message.from_, "duplicate", NODE,
                      _message_event(message, "arrives", self._arrives(arrival)))

    def _arrives(self, arrival: float) -> float:
        """``arrival`` as recorded: seconds since the start, rounded to the nanosecond."""
        if arrival != self._last_arrival:
            self._last_arrival = arrival
            self._last_arrives = round(arrival - self.start_time, 9)
        return self._last_arrives

    def on_deliver(self, message: Message) -> None:
        if self.record_messages:
            self._add(self._clock(), message.to, "deliver", TRANSPORT, _message_event(message))

    # -- reading --------------------------------------------------------------

    def _provisional(self) -> list[TraceRecord]:
        """The current instant's events as they would be published, without publishing."""
        first_seq = len(self._rows) + 1
        return [
            TraceRecord(self._pending_time, node, first_seq + offset, kind, _items(fields))
            for offset, (_, _, node, kind, fields) in enumerate(self._sorted_pending())
        ]

    @property
    def records(self) -> list[TraceRecord]:
        """Every event so far (the current instant's provisionally, in its final order)."""
        records = self._records
        for row in self._rows[len(records) :]:
            records.append(_record(row))
        if self._pending:
            return records + self._provisional()
        return records

    def __len__(self) -> int:
        return len(self._rows) + len(self._pending)

    def __iter__(self) -> Iterator[TraceRecord]:
        return iter(self.records)

    def of_kind(self, *kinds: str) -> list[TraceRecord]:
        """The records of these kinds. Only they are built: a run's summary asks for a
        few kinds out of tens of thousands of events, and building every record to
        look at its kind was a sixth of a property-search program's time."""
        built = self._records
        chosen = [built[number] if number < len(built) else _record(row)
                  for number, row in enumerate(self._rows) if row[3] in kinds]
        if self._pending:
            chosen += [record for record in self._provisional() if record.kind in kinds]
        return chosen

    def sha256(self) -> str:
        """Hash of the JSONL form of everything recorded so far."""
        rows = self._rows
        update = self._hash.update
        # Straight from the published rows, the same bytes as TraceRecord.to_json: no
        # record needs building to be hashed.
        for row in itertools.islice(rows, self._hashed, None):
            update(_row_json(row).encode("utf-8") + b"\n")
        self._hashed = len(rows)
        digest = self._hash.copy()
        for record in self._provisional() if self._pending else ():
            digest.update(record.to_json().encode("utf-8") + b"\n")
        return digest.hexdigest()

    def to_jsonl(self) -> str:
        return "".join(record.to_json() + "\n" for record in self.records)

    def write_jsonl(self, path) -> None:
        with open(path, "w", encoding="utf-8") as file:
            for record in self.records:
                file.write(record.to_json() + "\n")

    def to_text(self, kinds: set[str] | None = None) -> str:
        return "\n".join(
            record.to_text() for record in self.records if kinds is None or record.kind in kinds
        )

    def to_dicts(self) -> list[dict]:
        """Every record as a dict (see :func:`simulator.to_dicts`; for a pandas
        DataFrame, :func:`simulator.to_dataframe` takes a trace too)."""
        return [record.to_dict() for record in self.records]

    def excerpt(self, last: int = 20) -> str:
        """The last ``last`` records as text, for error messages."""
        return "\n".join(record.to_text() for record in self.records[-last:])


def _message_event(message, name: str | None = None, value=None):
    """A message event's fields, with one extra field ``name`` first (if given).

    Lazily (:class:`_MessageFields`) when the message carries no payload: one is
    made for every send and delivery, and most are never read. At once, as a dict
    without the message, when it carries a payload (entries, a snapshot, chunk
    data), so a trace never keeps payload bytes alive for the rest of the run.
    """
    if type(message) is Message:
        if not message.entries and message.snapshot is None:
            return _new_tuple(_MessageFields, (message, name, value))
    elif not getattr(message, "data", None):
        return _new_tuple(_MessageFields, (message, name, value))
    fields = {name: value} if name is not None else {}
    fields.update(message_fields(message))
    return fields


class _MessageFields(tuple):
    """``(message, name, value)``: a message event's fields, built from the message
    (after the extra field ``name``, if any) when first read.

    A tuple made with ``tuple.__new__``, not an object with an ``__init__``: one is
    made for every send and delivery, and a Python-level ``__init__`` cost about as
    much as the rest of recording the event.
    """

    __slots__ = ()

    def items(self):
        message, name, value = self
        fields = {name: value} if name is not None else {}
        fields.update(message_fields(message))
        return fields.items()


_new_tuple = tuple.__new__


def _items(fields) -> tuple:
    return tuple(fields.items())


def _row_json(row: tuple) -> str:
    """``_record(row).to_json()``, without the record."""
    time, node, seq, kind, fields = row
    body = {"t": time, "node": node, "seq": seq, "kind": kind}
    body.update(fields.items())
    return _COMPACT_JSON.encode(body)


def _record(row: tuple) -> TraceRecord:
    time, node, seq, kind, fields = row
    return TraceRecord(time, node, seq, kind, _items(fields))


def read_jsonl(path) -> list[TraceRecord]:
    """Load a trace written by :meth:`Trace.write_jsonl`; errors name the bad line."""
    records = []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                records.append(TraceRecord.from_json(line))
            except (ValueError, TypeError) as error:
                raise ValueError(f"{path}:{number}: not a trace record: {error}") from None
    return records

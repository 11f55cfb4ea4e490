"""Snapshot transfers of a real-network run, as the simulator's ``TransferProgress`` shows them.

Theory of operation. Node processes report transfers in two places: their
control service's ``Status.transfers`` (streaming: the sender's bytes sent
and re-sent, the receiver's verified offset and outcome) and their event
log (embedded: ``snapshot offered`` by the leader, ``snapshot installed``
by the receiver). A :class:`TransferBook` folds both, each time the run
looks, into one :class:`TransferView` per (receiver, snapshot) with the
fields the scenarios read (``from_``, ``to``, ``size``, ``bytes_sent``,
``resent_bytes``, ``retries``, ``outcome``, ``started_at``, ``updated_at``,
``bytes_done``). Times are wall seconds since the run began, as seen by
the run: a view starts when it is first seen and is updated when its bytes
or outcome change, so they are as fine as the run's polling, no finer.

A process forgets what it reported when it restarts; the book does not: a
sender record whose counters went down is a new record, and its earlier
counts are kept.
"""

from __future__ import annotations

import re

import attrs

from transports import Outcome

_OFFERED = re.compile(r"^snapshot (\d+) \((\d+) bytes, embedded\) to node (\d+)")
_INSTALLED_EMBEDDED = re.compile(r"^snapshot (\d+) \((\d+) bytes, embedded\)")


@attrs.define(eq=False)
class TransferView:
    """One snapshot's way to one node; field names as the simulator's ``TransferProgress``."""

    from_: int
    to: int
    snapshot_index: int
    mode: str
    size: int
    started_at: float
    updated_at: float
    snapshot_id: str = ""
    bytes_sent: int = 0
    resent_bytes: int = 0
    largest_resend: int = 0
    retries: int = 0
    verified_offset: int = 0
    resumed_from: int = 0
    outcome: Outcome = Outcome.IN_PROGRESS

    @property
    def bytes_done(self) -> int:
        return self.size if self.outcome is Outcome.INSTALLED else self.verified_offset


@attrs.define(eq=False)
class _SenderCounts:
    bytes_sent: int = 0
    resent_bytes: int = 0
    largest_resend: int = 0
    retries: int = 0
    # What earlier records (before the sender restarted or began again) counted.
    base: tuple[int, int, int] = (0, 0, 0)


class TransferBook:
    """See the module docstring. ``observe`` after each look at the cluster."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._views: dict[tuple[int, str], TransferView] = {}
        self._senders: dict[tuple[int, int, str], _SenderCounts] = {}
        self._started: dict[tuple[int, int], float] = {}  # (receiver, index) -> first "transfer started"
        self._installed: dict[tuple[int, int], float] = {}  # (receiver, index) -> "snapshot installed"

    def views(self) -> list[TransferView]:
        for view in self._views.values():  # the receiver's own stamps, where it logged them
            started = self._started.get((view.to, view.snapshot_index))
            installed = self._installed.get((view.to, view.snapshot_index))
            if started is not None and started < view.started_at:
                view.started_at = started
            if installed is not None and view.outcome is Outcome.INSTALLED:
                view.updated_at = installed
        return sorted(self._views.values(), key=lambda view: (view.started_at, view.to, view.snapshot_index))

    def _view(self, key, now: float, **fields) -> TransferView:
        view = self._views.get(key)
        if view is None:
            view = self._views[key] = TransferView(mode=self.mode, started_at=now, updated_at=now, **fields)
        return view

    def observe_status(self, node_id: int, status, now: float) -> None:
        """Fold one ``NodeStatus`` of ``node_id`` into the views."""
        for record in status.transfers:
            if record.incoming:
                self._incoming(node_id, record, now)
            else:
                self._outgoing(node_id, record, now)

    def _incoming(self, node_id: int, record, now: float) -> None:
        key = (node_id, record.snapshot_id)
        view = self._view(key, now, from_=record.peer, to=node_id, snapshot_index=record.snapshot_index,
                          size=record.size, snapshot_id=record.snapshot_id)
        outcome = _outcome(record.outcome)
        changed = (record.verified_offset, outcome) != (view.verified_offset, view.outcome)
        if view.outcome is Outcome.INSTALLED:
            return  # a later process of the same node may show it again as it starts up
        view.from_ = record.peer
        view.verified_offset = record.verified_offset
        view.retries = max(view.retries, record.resumptions)
        view.resumed_from = max(view.resumed_from, record.resumed_from)
        view.outcome = outcome
        if changed:
            view.updated_at = now

    def _outgoing(self, node_id: int, record, now: float) -> None:
        key = (record.peer, record.snapshot_id)
        view = self._view(key, now, from_=node_id, to=record.peer, snapshot_index=record.snapshot_index,
                          size=record.size, snapshot_id=record.snapshot_id)
        counts = self._senders.setdefault((node_id, *key), _SenderCounts())
        if record.bytes_sent < counts.bytes_sent:  # a new record: keep what the old one counted
            counts.base = (counts.base[0] + counts.bytes_sent, counts.base[1] + counts.resent_bytes,
                           counts.base[2] + counts.retries)
        changed = record.bytes_sent != counts.bytes_sent
        counts.bytes_sent, counts.resent_bytes = record.bytes_sent, record.resent_bytes
        counts.largest_resend, counts.retries = record.largest_resend, record.resumptions
        senders = [c for (sender, *rest), c in self._senders.items() if tuple(rest) == key]
        view.bytes_sent = sum(c.base[0] + c.bytes_sent for c in senders)
        view.resent_bytes = sum(c.base[1] + c.resent_bytes for c in senders)
        view.largest_resend = max(c.largest_resend for c in senders)
        view.retries = max(view.retries, sum(c.base[2] + c.retries for c in senders))
        if view.outcome is not Outcome.INSTALLED and _outcome(record.outcome) is Outcome.INSTALLED:
            view.outcome, changed = Outcome.INSTALLED, True
        if changed:
            view.updated_at = now

    def observe_event(self, node_id: int, name: str, detail: str, now: float) -> None:
        """Embedded transfers exist only as events: the offer, then the install.
        Streamed ones are timed by the receiver's events."""
        if name in ("transfer started", "transfer resumed", "snapshot installed"):
            index = re.match(r"^snapshot (\d+)", detail)
            if index is not None:
                key = (node_id, int(index.group(1)))
                if name == "snapshot installed":
                    self._installed[key] = now
                else:
                    self._started.setdefault(key, now)
        if name == "snapshot offered" and (match := _OFFERED.match(detail)):
            index, size, to = (int(group) for group in match.groups())
            view = self._view((to, f"embedded-{index}"), now, from_=node_id, to=to, snapshot_index=index, size=size)
            if view.bytes_sent:
                view.resent_bytes += size
                view.retries += 1
            view.from_ = node_id
            view.bytes_sent += size
            view.updated_at = now
        elif name == "snapshot installed" and (match := _INSTALLED_EMBEDDED.match(detail)):
            index, size = (int(group) for group in match.groups())
            view = self._views.get((node_id, f"embedded-{index}"))
            if view is not None and view.outcome is not Outcome.INSTALLED:
                view.outcome, view.verified_offset, view.updated_at = Outcome.INSTALLED, size, now


def _outcome(text: str) -> Outcome:
    try:
        return Outcome(text)
    except ValueError:
        return Outcome.IN_PROGRESS

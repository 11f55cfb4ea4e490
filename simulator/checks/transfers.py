"""Snapshot-liveness properties: a transfer that makes progress keeps it, and finishes in time.

Safety (:mod:`~simulator.checks.monitor`) says a node never installs a bad
snapshot; these say the good one gets there without waste. Each reads only
the trace and the transfer records, so the property search, sweeps,
``raftsim compare --policies`` and tests can all ask them of any run:

=================================  ===========================================
``restart_from_zero``              a receiver asked for byte 0 of a snapshot
                                   after it had verified some of it (its
                                   verified bytes were thrown away)
``resend_ratio``                   bytes re-sent exceed ``bound`` times the
                                   snapshot's size
``installed_then_failed``          the receiver installed the snapshot, yet
                                   the sender then reported the same transfer
                                   failed (an acknowledged install discarded)
``slower_than_link``               a transfer took longer than ``factor``
                                   times size / bandwidth, plus ``slack``: a
                                   timeout that does not scale with size
=================================  ===========================================

Each function returns the findings, one line each; an empty list means the
property held. Raftsim's own Streaming must hold all four under any fault
the search throws at it (the peers' policies in :mod:`transports.policies`
are there to show which ones they break).
"""

from __future__ import annotations

from collections.abc import Iterable


def restart_from_zero(records: Iterable) -> list[str]:
    """Verified bytes of a snapshot thrown away: a request for byte 0 after progress, or a restart.

    A transfer may start over for a reason that makes its bytes worthless (the
    whole snapshot failed its digest, the sender gave it up, a new transfer of
    it began); those reset what counts as verified.
    """
    verified: dict[tuple[int, int], int] = {}  # (receiver, snapshot index) -> verified bytes
    findings = []
    for record in records:
        kind = record.kind
        key = (record.node, record.get("index"))
        if kind == "transfer_progress":
            verified[key] = max(verified.get(key, 0), record.get("offset") or 0)
        elif kind == "snapshot_request" and record.get("offset") == 0 and verified.get(key, 0) > 0:
            findings.append(f"at {record.time:.3f} s n{record.node} asked for snapshot {key[1]} from byte 0 "
                            f"after verifying {verified[key]:,} bytes of it")
            verified[key] = 0
        elif kind == "transfer_restarted":
            findings.append(f"at {record.time:.3f} s n{record.node} threw away {record.get('discarded'):,} verified "
                            f"bytes of snapshot {key[1]} and started over")
            verified[key] = 0
        elif kind in ("transfer_started", "transfer_installed", "transfer_superseded", "transfer_aborted",
                      "transfer_digest_mismatch"):
            verified.pop(key, None)
    return findings


def resend_ratio(transfers: Iterable, bound: float) -> list[str]:
    """Transfers whose re-sent bytes exceed ``bound`` times their snapshot's size."""
    return [
        f"snapshot {t.snapshot_index} n{t.from_}->n{t.to}: {t.resent_bytes:,} bytes re-sent for a "
        f"{t.size:,}-byte snapshot (more than {bound:g} times its size)"
        for t in transfers if t.size and t.resent_bytes > bound * t.size
    ]


def installed_then_failed(records: Iterable) -> list[str]:
    """The sender got the receiver's "installed" acknowledgement, yet reported the transfer failed.

    An acknowledgement lost on the way is no fault of the sender's: only one it
    received (a ``deliver`` of a ``snapshot_ack`` with ``installed``) counts.
    """
    installed: dict[tuple[int, int, int], float] = {}  # (source, receiver, index) -> when
    acknowledged: dict[tuple[int, int], float] = {}  # (sender, receiver) -> when an installed ack arrived
    findings = []
    for record in records:
        kind = record.kind
        if kind == "transfer_installed":
            installed[(record.get("source"), record.node, record.get("index"))] = record.time
        elif kind == "deliver" and record.get("type") == "snapshot_ack" and record.get("installed"):
            acknowledged[(record.node, record.get("from"))] = record.time
        elif kind == "transfer_failed":
            key = (record.node, record.get("to"), record.get("index"))
            if key in installed and acknowledged.get(key[:2], -1.0) >= installed[key]:
                findings.append(f"at {record.time:.3f} s n{key[0]} reported snapshot {key[2]} to n{key[1]} failed "
                                f"({record.get('reason')}), though n{key[1]} installed it at {installed[key]:.3f} s "
                                f"and n{key[0]} received its acknowledgement")
    return findings


def slower_than_link(transfers: Iterable, bandwidth: float, *, factor: float = 2.0, slack: float = 5.0) -> list[str]:
    """Installed transfers that took longer than ``factor * size / bandwidth + slack`` seconds."""
    findings = []
    for t in transfers:
        if t.outcome.value != "installed":
            continue
        allowed = factor * t.size / bandwidth + slack
        took = t.updated_at - t.started_at
        if took > allowed:
            findings.append(f"snapshot {t.snapshot_index} n{t.from_}->n{t.to}: {t.size:,} bytes took {took:.2f} s "
                            f"on a {bandwidth:,.0f} B/s link (at most {allowed:.2f} s expected)")
    return findings

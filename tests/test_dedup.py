"""Content-addressed pieces: a receiver holding an older snapshot gets only what it lacks.

Mirrors ``simulator/snapshots/dedup.py``: cutting (content-defined, so an
insertion moves only nearby cuts), planning against the receiver's digests,
the sender's single pass over its snapshot, and the receiver's assembly into
an ordinary writer on a real disk store: verified piece by piece and as a
whole, resumable after a crash, refusing wrong or misplaced bytes.
"""

from __future__ import annotations

import itertools
import random

import pytest

from simulator.snapshots import (
    DiskSnapshotStore,
    SnapshotChunkError,
    SnapshotDigestError,
    digest_of,
)
from simulator.snapshots.dedup import (
    DIGEST_BYTES,
    MANIFEST_BYTES_PER_PIECE,
    DeltaAssembler,
    HeldPieces,
    manifest,
    pieces_to_send,
    plan_delta,
)

AVERAGE = 4096
CHUNK = 64 * 1024


def records(count: int, seed: int, changed: frozenset[int] = frozenset()) -> bytes:
    """A state of ``count`` 200-byte records; the ``changed`` ones get other contents."""
    rng = random.Random(seed)
    parts = []
    for number in range(count):
        body = rng.randbytes(200)
        if number in changed:
            body = bytes(reversed(body))
        parts.append(f"record {number:08}:".encode() + body)
    return b"".join(parts)


OLD = records(5000, seed=1)  # about 1 MiB
NEW = records(5000, seed=1, changed=frozenset(range(2000, 2050)))  # 1 % of the records, in one run


def stores(tmp_path, old: bytes = OLD, new: bytes = NEW):
    sender = DiskSnapshotStore(tmp_path / "sender", chunk_size=CHUNK, durable=False)
    receiver = DiskSnapshotStore(tmp_path / "receiver", chunk_size=CHUNK, durable=False)
    sender.save_snapshot(20, new, term=2)
    receiver.save_snapshot(10, old, term=1)
    return sender, receiver


def open_new(receiver, new: bytes = NEW):
    return receiver.open_writer(20, term=2, size=len(new), digest=digest_of(new), snapshot_id="new")


def transfer(sender, receiver, new: bytes = NEW):
    """The whole exchange; returns the plan and the bytes that crossed the wire."""
    held = HeldPieces.of(receiver, 10, average=AVERAGE)
    plan = plan_delta(manifest(sender.stream_snapshot(20), average=AVERAGE), held.digests())
    assembler = DeltaAssembler(receiver, open_new(receiver, new), held, plan)
    sent = 0
    for number, data in pieces_to_send(sender, 20, plan):
        assembler.receive(number, data)
        sent += len(data)
    assembler.commit()
    return plan, held.wire_bytes + plan.manifest_bytes + sent


def test_a_receiver_one_compaction_behind_gets_a_small_part_and_the_exact_snapshot(tmp_path):
    sender, receiver = stores(tmp_path)
    plan, wire = transfer(sender, receiver)
    assert receiver.read_snapshot(20) == NEW
    assert plan.bytes_to_send < 0.05 * len(NEW)  # 1 % changed, in one run: a few pieces around it
    assert wire < 0.1 * len(NEW)  # digests and manifest included
    assert plan.manifest_bytes == MANIFEST_BYTES_PER_PIECE * len(plan.pieces)


def test_an_insertion_moves_only_the_cuts_next_to_it():
    middle = len(OLD) // 2
    inserted = OLD[:middle] + b"a new record in the middle" * 4 + OLD[middle:]
    plan = plan_delta(manifest([inserted], average=AVERAGE), frozenset(p.digest for p in manifest([OLD], average=AVERAGE)))
    assert plan.bytes_to_send < 4 * 4 * AVERAGE  # a couple of pieces, not everything after the insertion
    # Fixed-size blocks would have to resend everything after the insertion point.
    fixed_old = {OLD[i : i + AVERAGE] for i in range(0, len(OLD), AVERAGE)}
    resent = sum(len(block) for block in (inserted[i : i + AVERAGE] for i in range(0, len(inserted), AVERAGE))
                 if block not in fixed_old)
    assert resent > len(inserted) // 3


def test_pieces_cover_the_bytes_and_hash_to_their_digests():
    pieces = manifest([OLD[:1000], OLD[1000:]], average=AVERAGE)  # chunk borders do not matter
    assert pieces == manifest([OLD], average=AVERAGE)
    assert pieces[0].offset == 0 and pieces[-1].end == len(OLD)
    assert all(a.end == b.offset for a, b in itertools.pairwise(pieces))
    assert all(len(p.digest) == DIGEST_BYTES for p in pieces)


def test_a_receiver_holding_nothing_alike_gets_everything(tmp_path):
    unrelated = random.Random(5).randbytes(len(NEW))
    sender, receiver = stores(tmp_path, old=unrelated)
    plan, _ = transfer(sender, receiver)
    assert plan.bytes_to_send == len(NEW) and receiver.read_snapshot(20) == NEW


def test_digests_cut_another_way_are_not_trusted():
    held = frozenset(p.digest for p in manifest([OLD], average=AVERAGE))
    plan = plan_delta(manifest([OLD], average=AVERAGE), held, piece_format="other-cutter/sha1")
    assert all(plan.send)


def test_a_damaged_held_piece_is_refused_and_nothing_is_published(tmp_path):
    sender, receiver = stores(tmp_path)
    old_file = tmp_path / "receiver" / "snapshot-0000000000000010.bin"
    held = HeldPieces.of(receiver, 10, average=AVERAGE)
    damaged = bytearray(old_file.read_bytes())
    damaged[len(damaged) // 4] ^= 0xFF  # rot on the receiver's disk after it announced its pieces
    old_file.write_bytes(bytes(damaged))
    plan = plan_delta(manifest(sender.stream_snapshot(20), average=AVERAGE), held.digests())
    with pytest.raises(SnapshotChunkError, match="held piece at offset .* does not match its digest"):
        DeltaAssembler(receiver, open_new(receiver), held, plan)
    assert not receiver.has_snapshot(20)


def test_received_pieces_must_come_in_order_and_match(tmp_path):
    sender, receiver = stores(tmp_path)
    held = HeldPieces.of(receiver, 10, average=AVERAGE)
    plan = plan_delta(manifest(sender.stream_snapshot(20), average=AVERAGE), held.digests())
    assembler = DeltaAssembler(receiver, open_new(receiver), held, plan)
    sent = list(pieces_to_send(sender, 20, plan))
    assert len(sent) >= 2
    (first, data), (second, _) = sent[0], sent[1]
    with pytest.raises(SnapshotChunkError, match=f"piece {first} expected, got piece {second}"):
        assembler.receive(second, data)
    with pytest.raises(SnapshotChunkError, match="received piece .* does not match its digest"):
        assembler.receive(first, b"x" * len(data))
    with pytest.raises(SnapshotChunkError, match=f"commit before piece {first}"):
        assembler.commit()


def test_the_whole_digest_catches_a_plan_for_other_bytes(tmp_path):
    # Every piece is genuine, but the manifest describes another snapshot of the same size.
    other = records(5000, seed=1, changed=frozenset(range(3000, 3050)))
    assert len(other) == len(NEW)
    sender, receiver = stores(tmp_path, new=other)
    held = HeldPieces.of(receiver, 10, average=AVERAGE)
    plan = plan_delta(manifest(sender.stream_snapshot(20), average=AVERAGE), held.digests())
    assembler = DeltaAssembler(receiver, open_new(receiver, NEW), held, plan)  # the writer expects NEW
    for number, data in pieces_to_send(sender, 20, plan):
        assembler.receive(number, data)
    with pytest.raises(SnapshotDigestError):
        assembler.commit()
    assert not receiver.has_snapshot(20)


def test_assembly_resumes_after_a_crash_at_a_piece_boundary(tmp_path):
    sender, receiver = stores(tmp_path, new=records(5000, seed=1, changed=frozenset(range(0, 5000, 40))))
    new = sender.read_snapshot(20)
    held = HeldPieces.of(receiver, 10, average=AVERAGE)
    plan = plan_delta(manifest(sender.stream_snapshot(20), average=AVERAGE), held.digests())
    to_send = list(pieces_to_send(sender, 20, plan))
    assembler = DeltaAssembler(receiver, open_new(receiver, new), held, plan, batch_bytes=AVERAGE)
    for number, data in to_send[: len(to_send) // 2]:
        assembler.receive(number, data)
    # The receiver crashes: a new store on its directory, a writer resumed at the recorded offset.
    reopened = DiskSnapshotStore(tmp_path / "receiver", chunk_size=CHUNK, durable=False)
    writer = open_new(reopened, new)
    assert 0 < writer.offset < len(new)
    resumed = DeltaAssembler(reopened, writer, held, plan)
    for number, data in to_send:
        if number >= resumed.expected:
            resumed.receive(number, data)
    resumed.commit()
    assert reopened.read_snapshot(20) == new

"""Dedup: bytes sent to a follower one compaction behind, beside a full transfer, and what it costs.

A key-value state (``--keys`` values of ``--value-size`` bytes, generated
from a seed) is snapshotted through ``KeyValueStore.snapshot_chunks`` into
the receiver's disk store (the snapshot it holds); then a fraction of the
keys gets new values of the same size and the sender's store gets the new
snapshot. Two ways to choose the changed keys:

- ``scattered``: uniformly random keys (the worst case for any dedup: each
  changed record spoils the piece it lies in);
- ``clustered``: one run of consecutive keys (recent records, one tenant).

Per case, in the same run and on the same stores: the full transfer (every
chunk streamed from the sender's store into a writer on the receiver's, as
Streaming does) and the dedup exchange (:mod:`simulator.snapshots.dedup`:
receiver's piece digests, sender's manifest, missing pieces, assembly). Bytes
on the wire for both (dedup counts digests and manifest too), and CPU
seconds per GiB of new snapshot for each side's dedup work beside the full
transfer's.

Run: ``python benchmarks/dedup.py [--keys 250000] [--value-size 1000] [--changed 1 10 50]
[--average-piece 16KiB] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

from benchlib import (
    GIB,
    MIB,
    Stopwatch,
    mib,
    parse_size,
    print_table,
    ratio,
    size_label,
    write_json,
)

from simulator import DiskSnapshotStore, KeyValueStore
from simulator.snapshots.dedup import (
    DEFAULT_AVERAGE_PIECE,
    DeltaAssembler,
    HeldPieces,
    manifest,
    pieces_to_send,
    plan_delta,
)

OLD_INDEX, NEW_INDEX = 100, 200


def make_state(keys: int, value_size: int, seed: int) -> KeyValueStore:
    rng = random.Random(seed)
    machine = KeyValueStore()
    machine.data = {f"key-{number:09}": rng.randbytes(value_size) for number in range(keys)}
    return machine


def changed_keys(keys: int, percent: float, how: str, seed: int) -> list[int]:
    count = max(1, round(keys * percent / 100))
    rng = random.Random(seed)
    if how == "scattered":
        return rng.sample(range(keys), count)
    start = rng.randrange(0, keys - count + 1)
    return list(range(start, start + count))


def snapshot_into(store: DiskSnapshotStore, machine: KeyValueStore, index: int) -> None:
    machine.applied_index = index
    store.save_snapshot(index, machine.snapshot_chunks(index), term=1)


def full_transfer(sender: DiskSnapshotStore, receiver: DiskSnapshotStore) -> tuple[Stopwatch, int]:
    stored = sender.snapshot_metadata(NEW_INDEX)
    with Stopwatch() as watch:
        writer = receiver.open_writer(NEW_INDEX, term=stored.term, size=stored.size, digest=stored.digest,
                                      snapshot_id=stored.snapshot_id)
        for chunk in sender.stream_snapshot(NEW_INDEX):
            writer.write(writer.offset, chunk)
        writer.commit()
    return watch, stored.size


def dedup_transfer(sender: DiskSnapshotStore, receiver: DiskSnapshotStore, average: int) -> dict:
    stored = sender.snapshot_metadata(NEW_INDEX)
    with Stopwatch() as receiver_cut:
        held = HeldPieces.of(receiver, OLD_INDEX, average=average)
    with Stopwatch() as sender_cut:
        plan = plan_delta(manifest(sender.stream_snapshot(NEW_INDEX), average=average), held.digests())
    # The two sides alternate in one thread: each step's time goes to the side that took it.
    send_cpu = send_wall = assembly_cpu = assembly_wall = 0.0
    with Stopwatch() as step:
        writer = receiver.open_writer(NEW_INDEX, term=stored.term, size=stored.size, digest=stored.digest,
                                      snapshot_id=stored.snapshot_id)
        assembler = DeltaAssembler(receiver, writer, held, plan)
    assembly_cpu, assembly_wall = step.cpu, step.wall
    sent = 0
    pieces = pieces_to_send(sender, NEW_INDEX, plan)
    while True:
        with Stopwatch() as step:
            item = next(pieces, None)
        send_cpu, send_wall = send_cpu + step.cpu, send_wall + step.wall
        with Stopwatch() as step:
            if item is None:
                assembler.commit()
            else:
                assembler.receive(*item)
                sent += len(item[1])
        assembly_cpu, assembly_wall = assembly_cpu + step.cpu, assembly_wall + step.wall
        if item is None:
            break
    per_gib = GIB / stored.size
    return {
        "pieces": len(plan.pieces),
        "pieces_sent": plan.pieces_to_send,
        "piece_bytes_sent": sent,
        "digest_bytes": held.wire_bytes,
        "manifest_bytes": plan.manifest_bytes,
        "wire_bytes": held.wire_bytes + plan.manifest_bytes + sent,
        "copied_bytes": assembler.copied_bytes,
        "receiver_cut_cpu_per_gib": receiver_cut.cpu * per_gib,
        "sender_cut_cpu_per_gib": sender_cut.cpu * per_gib,
        "sender_send_cpu_per_gib": send_cpu * per_gib,
        "assembly_cpu_per_gib": assembly_cpu * per_gib,
        "cpu_per_gib": (receiver_cut.cpu + sender_cut.cpu + send_cpu + assembly_cpu) * per_gib,
        "wall_seconds": receiver_cut.wall + sender_cut.wall + send_wall + assembly_wall,
    }


def measure(keys: int, value_size: int, percent: float, how: str, average: int, folder: Path) -> dict:
    shutil.rmtree(folder, ignore_errors=True)
    sender = DiskSnapshotStore(folder / "sender", chunk_size=MIB)
    receiver = DiskSnapshotStore(folder / "receiver", chunk_size=MIB)
    machine = make_state(keys, value_size, seed=1)
    snapshot_into(receiver, machine, OLD_INDEX)
    rng = random.Random(2)
    names = sorted(machine.data)
    for number in changed_keys(keys, percent, how, seed=3):
        machine.data[names[number]] = rng.randbytes(value_size)
    snapshot_into(sender, machine, NEW_INDEX)
    del machine
    # The baseline receives into a store of its own; the dedup receiver keeps only its old snapshot.
    full, size = full_transfer(sender, DiskSnapshotStore(folder / "full-receiver", chunk_size=MIB))
    dedup = dedup_transfer(sender, receiver, average)
    if receiver.snapshot_metadata(NEW_INDEX).digest != sender.snapshot_metadata(NEW_INDEX).digest:
        raise RuntimeError("the assembled snapshot differs from the sender's")
    shutil.rmtree(folder, ignore_errors=True)
    per_gib = GIB / size
    return {
        "changed_percent": percent, "how": how, "size": size, "average_piece": average,
        "full": {"wire_bytes": size, "cpu_per_gib": full.cpu * per_gib, "wall_seconds": full.wall},
        "dedup": dedup,
        "wire_ratio": ratio(dedup["wire_bytes"], size),
        "saved_bytes": size - dedup["wire_bytes"],
        "cpu_ratio": ratio(dedup["cpu_per_gib"], full.cpu * per_gib),
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=250_000)
    parser.add_argument("--value-size", type=int, default=1000)
    parser.add_argument("--changed", type=float, nargs="+", default=[1, 10, 50], help="percent of keys")
    parser.add_argument("--how", nargs="+", default=["clustered", "scattered"], choices=["clustered", "scattered"])
    parser.add_argument("--average-piece", type=parse_size, default=DEFAULT_AVERAGE_PIECE)
    parser.add_argument("--dir", type=Path, default=None, help="where the disk stores go (default: a temp dir)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="raftsim-dedup-", dir=args.dir))
    try:
        rows = [measure(args.keys, args.value_size, percent, how, args.average_piece, folder / "run")
                for how in args.how for percent in args.changed]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    table = []
    for row in rows:
        dedup = row["dedup"]
        table.append([
            f"{row['changed_percent']:g} % {row['how']}", mib(row["size"]), mib(row["full"]["wire_bytes"]),
            mib(dedup["wire_bytes"]), f"{row['wire_ratio']:.3f}", mib(row["saved_bytes"]),
            f"{row['full']['cpu_per_gib']:.2f}", f"{dedup['sender_cut_cpu_per_gib'] + dedup['sender_send_cpu_per_gib']:.2f}",
            f"{dedup['receiver_cut_cpu_per_gib'] + dedup['assembly_cpu_per_gib']:.2f}", f"{row['cpu_ratio']:.2f}",
        ])
    print_table(
        f"Dedup for a follower one compaction behind; pieces of {size_label(args.average_piece)} on average",
        ["state changed", "snapshot", "full: sent", "dedup: sent", "ratio", "saved", "full CPU s/GiB",
         "dedup sender CPU s/GiB", "dedup receiver CPU s/GiB", "CPU ratio"],
        table,
        "dedup: sent = piece digests (receiver) + manifest (sender) + missing pieces. Full: every chunk streamed "
        "into a writer (both durable disk stores). CPU per GiB of new snapshot.",
    )
    print(f"load average at the end: {os.getloadavg()}")
    write_json(args.json, "dedup", ["benchmarks/dedup.py", *argv], {"dedup": rows, "load_average": os.getloadavg()})


if __name__ == "__main__":
    main()

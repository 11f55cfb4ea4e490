"""Disk faults: fsyncs that lie, a write that lands in the wrong place, a bit that flips on read.

Runs on the disk store (its ``DEFAULTS``): every node keeps its snapshots in
real files, and every read and write of them goes through a file layer that
can misbehave the way real disks do (TigerBeetle's storage simulator injects
the same faults). The story is a fault program (the steps are printed as
they run), in three acts:

1. n2's disk starts to lie: its fsyncs report success but nothing reaches
   the platter. n2 takes a snapshot, then crashes. Everything written since
   the disk began lying is gone. On restart n2 finds that the snapshot its
   Raft storage names is missing, knows it, refuses to pretend, and asks the
   leader for a snapshot.
2. n1's and n3's next writes of snapshot data land one write away from
   where they were aimed. Each store reads back what it wrote before
   publishing it, finds the bytes do not match the digest, and refuses the
   snapshot; the log is kept, nothing corrupt is published.
3. n2 crashes again and falls behind; while the leader streams it a
   snapshot, one bit flips on its way from the leader's disk. The digest,
   checked before the last chunk leaves, catches it; the leader gives up that
   transfer and sends the snapshot again, and this time it reads right.

At the end every node reads its newest snapshot back from disk and must
find the digest its Raft storage recorded (the program's end-of-run checks).
The limits, and what the gRPC node's sqlite log detects, are in
``docs/disk_faults.md``.
"""

from simulator import (
    Compact,
    CompactionPolicy,
    Crash,
    FlipBitOnRead,
    LostFsync,
    MisdirectedWrite,
    Program,
    Propose,
    Restart,
    Wait,
    run_program,
)

CLUSTER = {"nodes": 3, "compaction": CompactionPolicy(every=10, keep_entries=2)}
MODES = ("streaming",)
DEFAULTS = {"store": "disk"}
STREAMING = {"chunk_size": 1024}

PROGRAM = Program(
    steps=(
        LostFsync(node=2), Propose(count=15), Crash(node=2), Restart(node=2), Propose(count=3), Wait(seconds=2.0),
        MisdirectedWrite(node=1), MisdirectedWrite(node=3), Compact(node=1), Compact(node=3),
        Crash(node=2), Propose(count=15), FlipBitOnRead(node=1), FlipBitOnRead(node=3), Restart(node=2),
        Propose(count=3), Wait(seconds=2.0),
    ),
    liveness_within=30.0,
)


async def scenario(sim):
    await run_program(sim, PROGRAM, payload_size=1024, warmup=25)
    records = sim.cluster.trace.records

    def events(kind, text=""):
        return [r for r in records if r.kind == kind and text in str(r.get("reason") or "")]

    sim.check(any(r.node == 2 for r in events("snapshot_lost")) and any(r.node == 2 for r in events("snapshot_recovered")),
              "n2 noticed the snapshot its lying disk lost, and the leader sent it one")
    sim.check(len({r.node for r in events("compaction_failed", "does not read back as written")}) == 2,
              "both misdirected writes were refused before a snapshot was published")
    sim.check(bool(events("transfer_failed", "has digest")),
              "the flipped bit was caught by the snapshot's digest, and the transfer tried again")

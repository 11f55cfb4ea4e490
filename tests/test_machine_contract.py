"""The StateMachine contract, tested from outside with a machine written only to the protocol.

``JsonCounter`` knows nothing of raftsim's codec: it snapshots as JSON and
restores with ``json.loads(b"".join(chunks))``, exactly as the documentation
of :mod:`simulator.machines.contracts` says a user may. It must install in
Embedded and in Streaming mode alike (it once crashed streamed, because
streaming handed ``restore_from_snapshot`` an iterator where the protocol
said bytes). ``check_state_machine`` passes it and the built-in machines and
fails each broken variant with the rule it breaks.
"""

from __future__ import annotations

import json

import pytest

from simulator import Cluster, CompactionPolicy, DiskSnapshotStore, KeyValueStore, WorkflowExecutor
from simulator.testing import ContractViolation, check_state_machine
from transports import Embedded, Streaming


class JsonCounter:
    """Counters by name; commands are ``b"inc NAME"``; JSON snapshots."""

    def __init__(self) -> None:
        self.applied_index = 0
        self.counts: dict[str, int] = {}

    def apply(self, index: int, command: bytes) -> str:
        self.applied_index = index
        op, _, name = command.decode("utf-8", "replace").partition(" ")
        if op != "inc" or not name:
            return "error: expected b'inc NAME'"
        self.counts[name] = self.counts.get(name, 0) + 1
        return str(self.counts[name])

    def snapshot_chunks(self, index: int):
        yield json.dumps({"index": index, "counts": self.counts}, sort_keys=True).encode()

    def restore_from_snapshot(self, chunks) -> None:
        state = json.loads(b"".join(chunks))
        self.applied_index, self.counts = state["index"], state["counts"]

    def digest(self) -> str:
        return json.dumps(self.counts, sort_keys=True)


COMMANDS = [b"inc a", b"inc b", b"inc a", b"inc c"]


def test_a_machine_written_to_the_protocol_passes_the_kit():
    report = check_state_machine(JsonCounter, COMMANDS)
    assert report.refused_truncated_snapshot and report.snapshot_size > 0


@pytest.mark.parametrize("machine, commands", [
    (KeyValueStore, [KeyValueStore.put("a", b"1"), KeyValueStore.put("b", b"2"), KeyValueStore.delete("a")]),
    (WorkflowExecutor, [WorkflowExecutor.start("w", ["x", "y"], b"p"), WorkflowExecutor.complete_step("w", "x")]),
])
def test_the_built_in_machines_pass_the_kit(machine, commands):
    assert check_state_machine(machine, commands).refused_truncated_snapshot


def test_built_in_snapshots_stream_in_bounded_pieces():
    store = KeyValueStore()
    for number in range(40):
        store.apply(number + 1, KeyValueStore.put(f"k{number:02}", bytes(100_000)))
    chunks = list(store.snapshot_chunks(store.applied_index))
    assert len(chunks) > 10
    assert max(len(chunk) for chunk in chunks) < 400_000
    assert b"".join(chunks) == store.create_snapshot(store.applied_index)


class RaisesOnGarbage(JsonCounter):
    def apply(self, index, command):
        self.applied_index = index
        if not command.startswith(b"inc "):
            raise ValueError("bad command")
        return super().apply(index, command)


class ForgetsTheIndex(JsonCounter):
    def restore_from_snapshot(self, chunks):
        self.counts = json.loads(b"".join(chunks))["counts"]


class UnsortedSnapshots(JsonCounter):
    flip = False

    def snapshot_chunks(self, index):
        UnsortedSnapshots.flip = not UnsortedSnapshots.flip
        counts = dict(sorted(self.counts.items(), reverse=UnsortedSnapshots.flip))
        yield json.dumps({"index": index, "counts": counts}).encode()


class HalfRestores(JsonCounter):
    """Clears its state before it knows the snapshot is good."""

    def restore_from_snapshot(self, chunks):
        self.counts = {}
        super().restore_from_snapshot(chunks)


class TextChunks(JsonCounter):
    def snapshot_chunks(self, index):
        yield json.dumps({"index": index, "counts": self.counts})


class ReadsChunksTwice(JsonCounter):
    def restore_from_snapshot(self, chunks):
        size = sum(len(chunk) for chunk in chunks)  # a one-shot iterator is empty afterwards
        super().restore_from_snapshot(chunks if size else [b""])


@pytest.mark.parametrize("machine, rule", [
    (RaisesOnGarbage, "apply never raises"),
    (ForgetsTheIndex, "restore equals the snapshotted state"),
    (UnsortedSnapshots, "snapshots are canonical"),
    (HalfRestores, "a refused snapshot keeps the old state"),
    (TextChunks, "snapshot_chunks yields bytes"),
    (ReadsChunksTwice, "restore_from_snapshot accepts its own snapshot"),
])
def test_the_kit_names_the_rule_a_broken_machine_breaks(machine, rule):
    with pytest.raises(ContractViolation, match=rule):
        check_state_machine(machine, COMMANDS)


def test_the_kit_wants_commands_to_build_state():
    with pytest.raises(ValueError, match="at least 2 commands expected"):
        check_state_machine(JsonCounter, [b"inc a"])


@pytest.mark.parametrize("mode_name", ["embedded", "streaming", "streaming-disk"])
async def test_a_json_machine_installs_snapshots_in_every_mode(autojump_clock, tmp_path, mode_name):
    if mode_name == "embedded":
        mode = Embedded()
    elif mode_name == "streaming":
        mode = Streaming(chunk_size=16)
    else:
        mode = Streaming(chunk_size=16, store=lambda node: DiskSnapshotStore(tmp_path / f"n{node}",
                                                                           chunk_size=16))
    async with Cluster.open(nodes=3, seed=4, state_machine=JsonCounter, snapshot_mode=mode,
                            compaction=CompactionPolicy(every=5)) as cluster:
        await cluster.wait_for_leader()
        for number in range(12):
            result = await cluster.propose(f"inc c{number % 3}".encode())
            assert result.result == str(number // 3 + 1)
        joined = await cluster.add_node()
        await cluster.wait_caught_up()
        installed = [r for r in cluster.trace.records if r.kind == "snapshot_installed" and r.node == joined]
        assert installed, "the new node caught up without installing a snapshot"
        assert cluster.state_machine(joined).counts == {"c0": 4, "c1": 4, "c2": 4}
        assert len({cluster.state_machine(n).digest() for n in cluster.node_ids}) == 1


class DelegatingStore:
    """A store written from scratch (no raftsim base class): it forwards to a disk store and
    declares its own recovery through ``reopened``."""

    reopen_count = 0

    def __init__(self, directory, chunk_size=16):
        self.directory = directory
        self.inner = DiskSnapshotStore(directory, chunk_size=chunk_size, durable=False)
        self.chunk_size = chunk_size

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def save_snapshot(self, *args, **kwargs):
        return self.inner.save_snapshot(*args, **kwargs)

    def stream_snapshot(self, index, offset=0):
        return self.inner.stream_snapshot(index, offset)

    def snapshot_metadata(self, index):
        return self.inner.snapshot_metadata(index)

    def list_snapshots(self):
        return self.inner.list_snapshots()

    def latest(self):
        return self.inner.latest()

    def has_snapshot(self, index):
        return self.inner.has_snapshot(index)

    def compact_snapshots(self, keep_count):
        return self.inner.compact_snapshots(keep_count)

    def read_snapshot(self, index):
        return self.inner.read_snapshot(index)

    def open_writer(self, index, **identity):
        return self.inner.open_writer(index, **identity)

    def partial_transfers(self):
        return self.inner.partial_transfers()

    def reopened(self):
        DelegatingStore.reopen_count += 1
        return DelegatingStore(self.directory, self.chunk_size)


def test_a_store_written_from_scratch_passes_the_kit(tmp_path):
    from simulator.testing import check_snapshot_store

    places = iter(range(100))
    check_snapshot_store(lambda chunk_size: DelegatingStore(tmp_path / f"s{next(places)}", chunk_size))


async def test_restart_recovers_any_store_through_its_protocol(autojump_clock, tmp_path):
    DelegatingStore.reopen_count = 0
    mode = Streaming(chunk_size=16, store=lambda node: DelegatingStore(tmp_path / f"n{node}"))
    async with Cluster.open(nodes=3, seed=4, state_machine=JsonCounter, snapshot_mode=mode,
                            compaction=CompactionPolicy(every=5)) as cluster:
        leader = await cluster.wait_for_leader()
        for number in range(8):
            await cluster.propose(f"inc c{number % 2}".encode())
        await cluster.wait_caught_up()
        follower = next(n for n in cluster.node_ids if n != leader)
        before = cluster.store(follower)
        cluster.crash(follower)
        cluster.restart(follower)
        await cluster.wait_caught_up()
        assert DelegatingStore.reopen_count == 1
        assert cluster.store(follower) is not before
        [event] = [r for r in cluster.trace.records if r.kind == "store_reopened"]
        assert event.node == follower and event.get("snapshots") == [s.index for s in before.list_snapshots()]
        assert cluster.state_machine(follower).counts == {"c0": 4, "c1": 4}

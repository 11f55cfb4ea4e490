"""Crash at every durable step of every disk-store write, reopen, and check.

Each scenario sets a directory up with a plain store, then runs one operation
on a store whose ``fault_injector`` raises :class:`Crash` at the k-th step, for
every k the operation reaches. A new store is then opened on the directory
(the restart) and must show a consistent state:

- every snapshot it lists reads back whole, with the right digest, and holds
  the bytes that were saved at that index (no corrupt snapshot is visible);
- the newest snapshot is the one from before the operation or the one the
  operation was making, never older (the last good snapshot is never lost);
- a partial transfer resumes at an offset no further than what was written,
  and finishing it from there yields the right snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from simulator.snapshots import FAULT_STEPS, DiskSnapshotStore, SnapshotDigestError, digest_of

OLD = b"old snapshot " * 7  # at index 5
NEW = bytes(range(256)) * 2 + b"tail"  # index 9, received or saved
CHUNK = 100


class Crash(Exception):
    """The simulated crash: raised by the fault injector, caught by the test."""


def open_store(directory: Path, fault_injector=None) -> DiskSnapshotStore:
    return DiskSnapshotStore(directory, chunk_size=CHUNK, clock=lambda: 1.0, fault_injector=fault_injector)


def writer_for(store: DiskSnapshotStore, index: int, data: bytes, snapshot_id: str = "new"):
    return store.open_writer(index, term=2, size=len(data), digest=digest_of(data), snapshot_id=snapshot_id)


def write_chunks(writer, data: bytes, start: int, stop: int) -> None:
    for offset in range(start, stop, CHUNK):
        writer.write(offset, data[offset : min(offset + CHUNK, stop)])


@attrs.frozen
class Scenario:
    name: str
    setup: Callable[[DiskSnapshotStore], None]
    operation: Callable[[DiskSnapshotStore], object]
    # Snapshots the restarted store may list, index -> bytes; and the newest it may show.
    allowed_snapshots: dict[int, bytes]
    allowed_latest: tuple[int, ...]
    # A transfer of NEW at index 9 may be found and must then be resumable.
    partial_limit: int = 0


def _base(store):
    store.save_snapshot(5, OLD, term=1)


def _with_partial(store, upto=300, data=NEW, snapshot_id="new"):
    _base(store)
    write_chunks(writer_for(store, 9, data, snapshot_id), data, 0, upto)


def _resume_and_write(store):
    writer = writer_for(store, 9, NEW)
    write_chunks(writer, NEW, writer.offset, 500)


def _resume_and_commit(store):
    writer = writer_for(store, 9, NEW)
    write_chunks(writer, NEW, writer.offset, len(NEW))
    writer.commit()


def _commit_bad_digest(store):
    writer = writer_for(store, 9, NEW)
    write_chunks(writer, b"X" * len(NEW), writer.offset, len(NEW))
    with pytest.raises(SnapshotDigestError):
        writer.commit()


def _compact(store):
    store.save_snapshot(7, b"seven", term=1)


SCENARIOS = [
    Scenario(
        "save a newer snapshot",
        setup=_base,
        operation=lambda store: store.save_snapshot(9, (NEW[i : i + 64] for i in range(0, len(NEW), 64)), term=2),
        allowed_snapshots={5: OLD, 9: NEW},
        allowed_latest=(5, 9),
    ),
    Scenario(
        "start a transfer, superseding an older partial",
        setup=lambda store: _with_partial(store, 200, data=b"superseded" * 30, snapshot_id="older"),
        operation=lambda store: writer_for(store, 9, NEW),
        allowed_snapshots={5: OLD},
        allowed_latest=(5,),
        partial_limit=0,
    ),
    Scenario(
        "write chunks of a transfer",
        setup=_with_partial,
        operation=_resume_and_write,
        allowed_snapshots={5: OLD},
        allowed_latest=(5,),
        partial_limit=500,
    ),
    Scenario(
        "finish and commit a transfer",
        setup=_with_partial,
        operation=_resume_and_commit,
        allowed_snapshots={5: OLD, 9: NEW},
        allowed_latest=(5, 9),
        partial_limit=len(NEW),
    ),
    Scenario(
        "commit a transfer whose digest is wrong",
        setup=lambda store: _with_partial(store, 0),
        operation=_commit_bad_digest,
        allowed_snapshots={5: OLD},
        allowed_latest=(5,),
        partial_limit=-1,  # garbage bytes: any surviving partial must fail its digest, checked below
    ),
    Scenario(
        "compact older snapshots",
        setup=lambda store: (_base(store), _compact(store)),
        operation=lambda store: store.compact_snapshots(1),
        allowed_snapshots={5: OLD, 7: b"seven"},
        allowed_latest=(7,),
    ),
]


def steps_of(scenario: Scenario, directory: Path) -> list[str]:
    scenario.setup(open_store(directory))
    steps: list[str] = []
    scenario.operation(open_store(directory, fault_injector=steps.append))
    return steps


def crash_on(step_name: str):
    def injector(step: str) -> None:
        if step == step_name:
            raise Crash(step)

    return injector


def crash_at(step_number: int):
    calls = iter(range(step_number + 1))

    def injector(step: str) -> None:
        if next(calls) == step_number:
            raise Crash(step)

    return injector


def check_recovered(store: DiskSnapshotStore, scenario: Scenario) -> None:
    for snapshot in store.list_snapshots():
        assert snapshot.index in scenario.allowed_snapshots, store.list_snapshots()
        assert store.read_snapshot(snapshot.index) == scenario.allowed_snapshots[snapshot.index]
    assert store.latest() is not None and store.latest().index in scenario.allowed_latest
    for partial in store.partial_transfers():
        assert partial.index == 9, partial
        if scenario.partial_limit == -1:
            writer = writer_for(store, 9, NEW)
            write_chunks(writer, b"X" * len(NEW), writer.offset, len(NEW))
            with pytest.raises(SnapshotDigestError):
                writer.commit()
            continue
        assert partial.snapshot_id == "new" and partial.offset <= scenario.partial_limit
        writer = writer_for(store, 9, NEW)
        assert writer.offset == partial.offset
        write_chunks(writer, NEW, writer.offset, len(NEW))
        writer.commit()
        assert store.read_snapshot(9) == NEW


def test_every_fault_step_is_documented(tmp_path):
    seen = set()
    for number, scenario in enumerate(SCENARIOS):
        seen.update(steps_of(scenario, tmp_path / str(number)))
    assert seen == set(FAULT_STEPS)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_reopening_after_a_crash_at_each_step_is_never_corrupt(tmp_path, scenario):
    steps = steps_of(scenario, tmp_path / "probe")
    assert steps
    for step_number, step in enumerate(steps):
        directory = tmp_path / f"crash-{step_number}"
        scenario.setup(open_store(directory))
        with pytest.raises(Crash):
            scenario.operation(open_store(directory, fault_injector=crash_at(step_number)))
        restarted = open_store(directory)
        try:
            check_recovered(restarted, scenario)
        except AssertionError as error:
            raise AssertionError(f"after a crash at step {step_number} ({step}): {error}") from error
        # Whatever recovery did, a second restart finds nothing more to repair.
        again = open_store(directory)
        assert again.recovery_actions == [], again.recovery_actions


def test_commit_interrupted_after_the_rename_is_completed_on_reopen(tmp_path):
    _with_partial(open_store(tmp_path))
    store = open_store(tmp_path, fault_injector=crash_on("data_renamed"))
    writer = writer_for(store, 9, NEW)
    write_chunks(writer, NEW, writer.offset, len(NEW))
    with pytest.raises(Crash):
        writer.commit()
    restarted = open_store(tmp_path)
    assert [s.index for s in restarted.list_snapshots()] == [5, 9]
    assert restarted.read_snapshot(9) == NEW and restarted.snapshot_metadata(9).snapshot_id == "new"
    assert any("completed snapshot 9" in action for action in restarted.recovery_actions)
    assert restarted.partial_transfers() == [] and restarted.problems == []

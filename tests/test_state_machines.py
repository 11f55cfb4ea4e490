"""The sample state machines (``WorkflowExecutor``, ``KeyValueStore``) and their codec.

Two rules are checked throughout: ``apply`` never raises on a committed
command (a bad one is a counted, deterministic no-op), and a snapshot either
restores exactly or is refused with a ``DecodeError`` that names the byte
offset, leaving the old state untouched.
"""

from __future__ import annotations

import copy
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simulator
from simulator import DecodeError, KeyValueStore, StateMachine, WorkflowExecutor
from simulator.machines.codec import Reader, Writer

start = WorkflowExecutor.start
complete = WorkflowExecutor.complete_step
fail = WorkflowExecutor.fail_step


def applied(machine, *commands) -> list[str]:
    """Apply ``commands`` at indexes following the machine's applied index; the results."""
    return [machine.apply(machine.applied_index + 1, command) for command in commands]


def statuses(executor: WorkflowExecutor, workflow_id: str) -> dict[str, str]:
    return {step.name: step.status for step in executor.workflows[workflow_id].steps}


# -- workflow executor: commands -------------------------------------------------------


def test_both_machines_satisfy_the_state_machine_protocol():
    assert isinstance(WorkflowExecutor(), StateMachine)
    assert isinstance(KeyValueStore(), StateMachine)


def test_start_creates_a_running_workflow_with_pending_steps_and_its_payload():
    executor = WorkflowExecutor()
    assert executor.apply(1, start("wf-1", ["fetch", "build"], b"payload")) == "ok"
    workflow = executor.workflows["wf-1"]
    assert workflow.status == "running"
    assert workflow.payload == b"payload"
    assert statuses(executor, "wf-1") == {"fetch": "pending", "build": "pending"}
    assert executor.applied_index == 1
    assert executor.rejected_commands == 0


def test_completing_some_steps_keeps_the_workflow_running():
    executor = WorkflowExecutor()
    results = applied(
        executor, start("wf-1", ["fetch", "build"]), complete("wf-1", "fetch", b"out")
    )
    assert results == ["ok", "ok"]
    assert executor.workflows["wf-1"].status == "running"
    assert executor.workflows["wf-1"].steps[0].output == b"out"


def test_completing_every_step_completes_the_workflow():
    executor = WorkflowExecutor()
    applied(executor, start("wf-1", ["fetch", "build"]), complete("wf-1", "build"))
    applied(executor, complete("wf-1", "fetch"))
    assert executor.workflows["wf-1"].status == "completed"
    assert statuses(executor, "wf-1") == {"fetch": "completed", "build": "completed"}


def test_failing_a_step_fails_the_workflow_and_keeps_the_reason():
    executor = WorkflowExecutor()
    results = applied(
        executor,
        start("wf-1", ["fetch", "build"]),
        complete("wf-1", "fetch"),
        fail("wf-1", "build", "compiler crashed"),
    )
    assert results == ["ok", "ok", "ok"]
    assert executor.workflows["wf-1"].status == "failed"
    assert executor.workflows["wf-1"].steps[1].output == b"compiler crashed"


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (start("wf-1", ["other"]), "workflow 'wf-1' already exists"),
        (start("wf-2", ["a", "a"]), "workflow 'wf-2' repeats a step name"),
        (complete("wf-9", "fetch"), "no workflow 'wf-9'"),
        (fail("wf-9", "fetch", "why"), "no workflow 'wf-9'"),
        (complete("wf-1", "deploy"), "workflow 'wf-1' has no step 'deploy'"),
        (complete("wf-1", "fetch"), "step 'fetch' of 'wf-1' is already completed"),
        (fail("wf-1", "fetch", "late"), "step 'fetch' of 'wf-1' is already completed"),
        (Writer().text("explode").text("wf-1").getvalue(), "unknown workflow command 'explode'"),
    ],
)
def test_invalid_workflow_command_is_rejected_and_changes_nothing_else(command, reason):
    executor = WorkflowExecutor()
    applied(executor, start("wf-1", ["fetch", "build"], b"p"), complete("wf-1", "fetch"))
    before = copy.deepcopy(executor.workflows)
    result = executor.apply(3, command)
    assert result.startswith("error: ") and reason in result
    assert executor.rejected_commands == 1
    assert executor.applied_index == 3  # a rejected command still occupies its log index
    assert executor.workflows == before


def test_failed_step_cannot_be_completed_afterwards():
    executor = WorkflowExecutor()
    applied(executor, start("wf-1", ["fetch"]), fail("wf-1", "fetch", "boom"))
    [result] = applied(executor, complete("wf-1", "fetch"))
    assert result == "error: step 'fetch' of 'wf-1' is already failed"
    assert executor.workflows["wf-1"].status == "failed"


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\x00\x01\x02",
        b"t\xff\xff\xff\xffabc",  # a text field claiming 4 GiB
        b"t\x00\x00\x00\x02\xc3\x28",  # invalid UTF-8
        start("wf-1", ["a"]) + b"trailing",
        start("wf-1", ["a"])[:-1],
    ],
)
def test_garbage_command_is_an_error_result_and_counted(garbage):
    executor = WorkflowExecutor()
    result = executor.apply(1, garbage)
    assert result.startswith("error: workflow command: at byte ")
    assert executor.rejected_commands == 1
    assert executor.applied_index == 1
    assert executor.workflows == {}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_workflow_apply_never_raises_on_arbitrary_bytes(data):
    executor = WorkflowExecutor()
    result = executor.apply(1, data)
    assert result == "ok" or result.startswith("error: ")
    assert executor.applied_index == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_key_value_apply_never_raises_on_arbitrary_bytes(data):
    store = KeyValueStore()
    result = store.apply(1, data)
    assert result in ("ok", "not found") or result.startswith("error: ")
    assert store.applied_index == 1


# -- workflow executor: snapshots ------------------------------------------------------


def busy_executor() -> WorkflowExecutor:
    executor = WorkflowExecutor()
    applied(
        executor,
        start("wf-b", ["fetch", "build", "test"], b"\x00payload\xff"),
        start("wf-a", ["only"]),
        complete("wf-b", "fetch", b"fetched"),
        fail("wf-b", "build", "no disk — ünïcode reason"),
        complete("wf-a", "only"),
        b"garbage",
    )
    return executor


def test_workflow_snapshot_round_trips_exactly():
    original = busy_executor()
    data = original.create_snapshot(6)
    restored = WorkflowExecutor()
    restored.restore_from_snapshot(data)
    assert restored.create_snapshot(restored.applied_index) == data
    assert restored.digest() == original.digest()
    assert (restored.applied_index, restored.rejected_commands) == (6, 1)
    assert statuses(restored, "wf-b") == {
        "fetch": "completed",
        "build": "failed",
        "test": "pending",
    }
    assert restored.workflows["wf-b"].payload == b"\x00payload\xff"


def test_workflow_snapshot_is_canonical_whatever_the_start_order():
    first, second = WorkflowExecutor(), WorkflowExecutor()
    applied(first, start("x", ["s"]), start("y", ["s"]))
    applied(second, start("y", ["s"]), start("x", ["s"]))
    assert first.create_snapshot(2) == second.create_snapshot(2)
    assert first.digest() == second.digest()


def test_digest_changes_when_the_state_changes():
    executor = busy_executor()
    before = executor.digest()
    applied(executor, complete("wf-b", "test"))
    assert executor.digest() != before
    assert before.startswith("blake3:") and len(before) == len("blake3:") + 64  # the snapshot digest's algorithm


@pytest.mark.parametrize("machine", [busy_executor, KeyValueStore])
def test_snapshot_at_another_index_than_applied_is_refused(machine):
    instance = machine()
    with pytest.raises(ValueError, match=f"index {instance.applied_index} expected, got 99"):
        instance.create_snapshot(99)


def header_length(format_name: str) -> int:
    """Bytes of the snapshot's format-name field: tag, 32-bit length, text."""
    return 1 + 4 + len(format_name)


CORRUPTIONS = [
    "empty",
    "truncated-by-one",
    "truncated-in-half",
    "index-tag-replaced",
    "trailing-bytes",
    "not-a-snapshot",
]


def corrupt(data: bytes, format_name: str, how: str) -> tuple[bytes, int | None]:
    """A damaged copy of a good snapshot, and the byte offset the error must name (if known)."""
    index_tag = header_length(format_name)
    return {
        "empty": (b"", 0),
        "truncated-by-one": (data[:-1], None),
        "truncated-in-half": (data[: len(data) // 2], None),
        "index-tag-replaced": (data[:index_tag] + b"x" + data[index_tag + 1 :], index_tag),
        "trailing-bytes": (data + b"\x00\x00", len(data)),
        "not-a-snapshot": (b"\xde\xad\xbe\xef" * 8, 0),
    }[how]


def state_of(machine) -> tuple[bytes, int, int]:
    snapshot = machine.create_snapshot(machine.applied_index)
    return snapshot, machine.applied_index, machine.rejected_commands


def assert_refused_and_unchanged(machine, bad: bytes, offset: int | None):
    before = state_of(machine)
    with pytest.raises(DecodeError) as refused:
        machine.restore_from_snapshot(bad)
    message = str(refused.value)
    found = re.search(r"at byte (\d+)", message)
    assert found, f"no byte offset in {message!r}"
    if offset is not None:
        assert int(found.group(1)) == offset, message
    assert state_of(machine) == before


@pytest.mark.parametrize("how", CORRUPTIONS)
def test_bad_workflow_snapshot_is_refused_naming_the_offset_and_keeps_the_old_state(how):
    good = busy_executor().create_snapshot(6)
    bad, offset = corrupt(good, WorkflowExecutor.SNAPSHOT_FORMAT, how)
    executor = WorkflowExecutor()
    applied(executor, start("mine", ["a"]))
    assert_refused_and_unchanged(executor, bad, offset)
    assert "mine" in executor.workflows


def test_key_value_snapshot_given_to_the_workflow_executor_is_refused_naming_the_offset():
    store = KeyValueStore()
    applied(store, KeyValueStore.put("k", b"v"))
    executor = busy_executor()
    assert_refused_and_unchanged(executor, store.create_snapshot(1), None)
    assert "wf-a" in executor.workflows


def test_corrupted_text_inside_a_workflow_snapshot_is_refused():
    good = busy_executor().create_snapshot(6)
    # "wf-a" is the first workflow id (sorted); make its first byte invalid UTF-8.
    position = good.index(b"wf-a")
    bad = good[:position] + b"\xff" + good[position + 1 :]
    executor = WorkflowExecutor()
    assert_refused_and_unchanged(executor, bad, None)


def test_decode_error_is_exported_and_is_a_value_error():
    assert simulator.DecodeError is DecodeError
    assert issubclass(DecodeError, ValueError)


# -- key-value store ---------------------------------------------------------------------


def test_put_then_get_returns_the_value():
    store = KeyValueStore()
    assert store.apply(1, KeyValueStore.put("k", b"v1")) == "ok"
    assert store.get("k") == b"v1"
    assert store.apply(2, KeyValueStore.put("k", b"v2")) == "ok"
    assert store.get("k") == b"v2"
    assert store.applied_index == 2


def test_get_of_a_missing_key_returns_the_default():
    store = KeyValueStore()
    assert store.get("nope") is None
    assert store.get("nope", b"dflt") == b"dflt"


def test_delete_removes_the_key():
    store = KeyValueStore()
    applied(store, KeyValueStore.put("k", b""))  # an empty value is still a value
    assert applied(store, KeyValueStore.delete("k")) == ["ok"]
    assert store.get("k") is None


def test_delete_of_a_missing_key_is_not_found_and_not_a_rejection():
    store = KeyValueStore()
    assert store.apply(1, KeyValueStore.delete("ghost")) == "not found"
    assert store.rejected_commands == 0


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (b"garbage", "error: key-value command: at byte 0"),
        (Writer().text("incr").text("k").getvalue(), "error: unknown key-value command 'incr'"),
        (KeyValueStore.put("k", b"v") + b"x", "error: key-value command: at byte"),
    ],
)
def test_bad_key_value_command_is_rejected_and_counted(command, expected):
    store = KeyValueStore()
    result = store.apply(1, command)
    assert result.startswith(expected)
    assert store.rejected_commands == 1
    assert store.data == {}


def filled_store() -> KeyValueStore:
    store = KeyValueStore()
    applied(
        store,
        KeyValueStore.put("zeta", b"\x00\xff"),
        KeyValueStore.put("alpha", b"1"),
        KeyValueStore.put("ключ", b""),
        KeyValueStore.delete("alpha"),
        b"junk",
    )
    return store


def test_key_value_snapshot_round_trips_exactly():
    original = filled_store()
    data = original.create_snapshot(5)
    restored = KeyValueStore()
    restored.restore_from_snapshot(data)
    assert restored.data == {"zeta": b"\x00\xff", "ключ": b""}
    assert (restored.applied_index, restored.rejected_commands) == (5, 1)
    assert restored.create_snapshot(5) == data
    assert restored.digest() == original.digest()


@pytest.mark.parametrize("how", CORRUPTIONS)
def test_bad_key_value_snapshot_is_refused_naming_the_offset_and_keeps_the_old_state(how):
    good = filled_store().create_snapshot(5)
    bad, offset = corrupt(good, KeyValueStore.SNAPSHOT_FORMAT, how)
    store = KeyValueStore()
    applied(store, KeyValueStore.put("mine", b"x"))
    assert_refused_and_unchanged(store, bad, offset)
    assert store.get("mine") == b"x"


def test_workflow_snapshot_given_to_the_key_value_store_is_refused_naming_the_offset():
    store = filled_store()
    assert_refused_and_unchanged(store, busy_executor().create_snapshot(6), None)


# -- property: a snapshot midway changes nothing -------------------------------------------

workflow_ids = st.sampled_from(["wf-1", "wf-2", "wf-3"])
step_names = st.sampled_from(["fetch", "build", "test"])
workflow_commands = st.one_of(
    st.builds(start, workflow_ids, st.lists(step_names, max_size=3), st.binary(max_size=8)),
    st.builds(complete, workflow_ids, step_names, st.binary(max_size=8)),
    st.builds(fail, workflow_ids, step_names, st.text(max_size=8)),
    st.binary(max_size=12),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(workflow_commands, max_size=30), st.data())
def test_executor_restored_from_a_midway_snapshot_ends_identical(commands, data):
    midway = data.draw(st.integers(0, len(commands)), label="snapshot after")
    straight, through_snapshot = WorkflowExecutor(), WorkflowExecutor()
    straight_results = applied(straight, *commands)
    results = applied(through_snapshot, *commands[:midway])
    restored = WorkflowExecutor()
    restored.restore_from_snapshot(through_snapshot.create_snapshot(midway))
    results += applied(restored, *commands[midway:])
    assert results == straight_results
    assert restored.digest() == straight.digest()
    assert (restored.applied_index, restored.rejected_commands) == (
        straight.applied_index,
        straight.rejected_commands,
    )


key_value_commands = st.one_of(
    st.builds(KeyValueStore.put, st.sampled_from("abc"), st.binary(max_size=4)),
    st.builds(KeyValueStore.delete, st.sampled_from("abc")),
    st.binary(max_size=8),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(key_value_commands, max_size=30), st.data())
def test_store_restored_from_a_midway_snapshot_ends_identical(commands, data):
    midway = data.draw(st.integers(0, len(commands)), label="snapshot after")
    straight, through_snapshot = KeyValueStore(), KeyValueStore()
    straight_results = applied(straight, *commands)
    results = applied(through_snapshot, *commands[:midway])
    restored = KeyValueStore()
    restored.restore_from_snapshot(through_snapshot.create_snapshot(midway))
    results += applied(restored, *commands[midway:])
    assert results == straight_results
    assert restored.digest() == straight.digest()


# -- codec ----------------------------------------------------------------------------------


def test_codec_round_trips_integers_bytes_and_text():
    encoded = (
        Writer()
        .int(0)
        .int(2**64 - 1)
        .bytes(b"")
        .bytes(b"\x00\xff" * 3)
        .text("")
        .text("héllo ✓ 🌍")
        .getvalue()
    )
    reader = Reader(encoded)
    assert [reader.int(), reader.int()] == [0, 2**64 - 1]
    assert [reader.bytes(), reader.bytes()] == [b"", b"\x00\xff" * 3]
    assert [reader.text(), reader.text()] == ["", "héllo ✓ 🌍"]
    assert reader.at_end
    reader.expect_end()


fields = st.lists(
    st.one_of(
        st.tuples(st.just("int"), st.integers(0, 2**64 - 1)),
        st.tuples(st.just("bytes"), st.binary(max_size=40)),
        st.tuples(st.just("text"), st.text(max_size=20)),
    ),
    max_size=10,
)


@settings(max_examples=200, deadline=None)
@given(fields)
def test_codec_round_trips_any_sequence_of_fields(values):
    writer = Writer()
    for kind, value in values:
        getattr(writer, kind)(value)
    reader = Reader(writer.getvalue())
    assert [(kind, getattr(reader, kind)()) for kind, _ in values] == values
    reader.expect_end()


def test_writer_accepts_bytearray_and_memoryview_as_bytes():
    reader = Reader(Writer().bytes(bytearray(b"ab")).bytes(memoryview(b"cd")).getvalue())
    assert [reader.bytes(), reader.bytes()] == [b"ab", b"cd"]


def test_reader_refuses_a_wrong_tag_naming_offset_and_both_tags():
    reader = Reader(Writer().int(1).int(5).getvalue(), "command")
    reader.int()
    with pytest.raises(DecodeError) as refused:
        reader.text()
    assert str(refused.value) == "command: at byte 9 expected text (tag b't'), found tag b'i'"


def test_reader_refuses_reading_past_the_end():
    with pytest.raises(DecodeError, match="at byte 0 expected an integer, found end of data"):
        Reader(b"").int()


def test_reader_refuses_a_truncated_length():
    with pytest.raises(DecodeError, match="at byte 1 expected 4 bytes of length, found 2 left"):
        Reader(b"b\x00\x00").bytes()


def test_reader_refuses_a_truncated_body():
    with pytest.raises(DecodeError, match="at byte 5 expected 5 bytes of bytes, found 3 left"):
        Reader(b"b\x00\x00\x00\x05abc").bytes()


def test_reader_refuses_a_truncated_integer():
    with pytest.raises(DecodeError, match="at byte 1 expected 8 bytes of integer, found 3 left"):
        Reader(b"i\x00\x00\x00").int()


def test_reader_refuses_invalid_utf8_naming_where_the_bad_text_is():
    # The invalid byte is the first of the text body, at byte 5: whether the error
    # points at the body or at the bad byte, it must say 5 (not where reading stopped).
    data = b"t\x00\x00\x00\x03\xffab"
    with pytest.raises(DecodeError, match="UTF-8") as refused:
        Reader(data).text()
    assert re.search(r"\bbyte (at )?5\b", str(refused.value)), str(refused.value)


def test_expect_end_refuses_trailing_bytes():
    reader = Reader(Writer().int(7).getvalue() + b"xy")
    assert reader.int() == 7
    assert not reader.at_end
    with pytest.raises(DecodeError, match="at byte 9 expected end of data, found 2 more bytes"):
        reader.expect_end()


@pytest.mark.parametrize("value", [-1, 2**64, -(2**70)])
def test_writer_refuses_integers_outside_unsigned_64_bit(value):
    with pytest.raises(ValueError, match=f"unsigned 64-bit, got {value}"):
        Writer().int(value)


def test_a_workflow_snapshot_after_changes_matches_one_encoded_from_scratch():
    # A snapshot reuses the encoding of workflows unchanged since the previous one;
    # a completed or failed step, a new workflow and a restore must all show.
    commands = [start("wf-b", ["x", "y"], b"pb"), start("wf-a", ["s"], b"pa")]
    later = [complete("wf-b", "x", b"out"), fail("wf-a", "s", "boom"), start("wf-c", ["z"])]
    reused = WorkflowExecutor()
    applied(reused, *commands)
    before = reused.create_snapshot(reused.applied_index)
    applied(reused, *later)
    fresh = WorkflowExecutor()
    applied(fresh, *commands, *later)
    after = reused.create_snapshot(reused.applied_index)
    assert after == fresh.create_snapshot(fresh.applied_index) != before
    restored = WorkflowExecutor()
    restored.restore_from_snapshot([before])
    assert statuses(restored, "wf-b") == {"x": "pending", "y": "pending"}
    applied(restored, *later)
    assert restored.create_snapshot(restored.applied_index) == after


def _pieces_written_one_by_one(executor: WorkflowExecutor) -> list[bytes]:
    """The workflow snapshot format, written field by field with no cache: the pieces a
    snapshot must yield (one ends after the workflow that takes it to SNAPSHOT_PIECE bytes)."""
    piece_size = simulator.machines.state_machines.SNAPSHOT_PIECE
    writer = Writer().text(WorkflowExecutor.SNAPSHOT_FORMAT).int(executor.applied_index)
    writer.int(executor.rejected_commands).int(len(executor.workflows))
    pieces = []
    for workflow_id in sorted(executor.workflows):
        workflow = executor.workflows[workflow_id]
        writer.text(workflow_id).bytes(workflow.payload).int(len(workflow.steps))
        for step in workflow.steps:
            writer.text(step.name).text(step.status).bytes(step.output)
        if writer.pending >= piece_size:
            pieces.append(writer.drain())
    if writer.pending:
        pieces.append(writer.drain())
    return pieces


def test_a_large_workflow_snapshot_keeps_the_bytes_and_pieces_of_one_written_field_by_field():
    # Snapshots between rounds of commands reuse what did not change: new workflows land
    # between old ones in id order, changed ones are encoded again, and the pieces end
    # where writing the fields one by one would end them, so stores see the same chunks.
    executor = WorkflowExecutor()
    rounds = [
        [start(f"wf-{n}", ["a", "b"], b"p" * (n % 700)) for n in range(0, 3000, 2)],
        [start(f"wf-{n}", ["a"], b"q" * 300) for n in range(1, 3000, 2)]
        + [complete(f"wf-{n}", "a", b"o" * 90) for n in range(0, 3000, 7)],
        [fail(f"wf-{n}", "b", "boom") for n in range(0, 3000, 4)] + [start("wf-1", ["dup"])],
        [complete("wf-none", "a")],  # only the header changes: a rejected command
    ]
    snapshots = []
    for commands in rounds:
        applied(executor, *commands)
        pieces = list(executor.snapshot_chunks(executor.applied_index))
        assert pieces == _pieces_written_one_by_one(executor)
        snapshots.append(b"".join(pieces))
    assert len(pieces) > 3 and len(set(snapshots)) == len(snapshots)
    assert executor.digest() == executor.digest()
    # A state replaced outside commands (a restore, or a test building one) is encoded afresh.
    restored = WorkflowExecutor()
    restored.restore_from_snapshot([snapshots[1]])
    assert restored.create_snapshot(restored.applied_index) == snapshots[1]
    del executor.workflows["wf-5"]
    assert list(executor.snapshot_chunks(executor.applied_index)) == _pieces_written_one_by_one(executor)
    assert WorkflowExecutor().create_snapshot(0) == b"".join(_pieces_written_one_by_one(WorkflowExecutor()))


_PICKLE_A_BUSY_EXECUTOR = """
import pickle, sys
from simulator import WorkflowExecutor
executor = WorkflowExecutor()
commands = [WorkflowExecutor.start(f"wf-{n}", ["a", "b"], b"p" * n) for n in range(40)]
commands += [WorkflowExecutor.complete_step(f"wf-{n}", "a", b"o") for n in range(0, 40, 3)]
for index, command in enumerate(commands[:30], start=1):
    executor.apply(index, command)
executor.create_snapshot(executor.applied_index)  # fills the encoding cache
for index, command in enumerate(commands[30:], start=31):
    executor.apply(index, command)  # leaves commands touched since that snapshot
sys.stdout.buffer.write(pickle.dumps(executor))
"""


def test_a_pickled_workflow_executor_is_the_same_bytes_whatever_the_hash_seed():
    # pysyncobj snapshots a machine by pickling it, and its runs must replay byte for
    # byte in any process: the pickle may not carry anything ordered by string hashes.
    import os
    import subprocess
    import sys

    def pickled(hash_seed: str) -> bytes:
        return subprocess.run([sys.executable, "-c", _PICKLE_A_BUSY_EXECUTOR], check=True, capture_output=True,
                              env=dict(os.environ, PYTHONHASHSEED=hash_seed)).stdout

    assert pickled("1") == pickled("4242") == pickled("31337")


def test_a_pickled_workflow_executor_carries_its_state_only_and_keeps_working():
    import pickle

    executor = WorkflowExecutor()
    applied(executor, *[start(f"wf-{n}", ["a"], b"x" * 500) for n in range(50)])
    executor.create_snapshot(executor.applied_index)
    applied(executor, complete("wf-7", "a", b"done"))
    bare = WorkflowExecutor(executor.workflows, executor.applied_index, executor.rejected_commands)
    # The encoding cache holds every workflow's fields again: it must not ride along.
    assert len(pickle.dumps(executor)) == len(pickle.dumps(bare))
    copy_ = pickle.loads(pickle.dumps(executor))
    assert copy_.digest() == executor.digest()
    assert copy_.create_snapshot(copy_.applied_index) == executor.create_snapshot(executor.applied_index)
    applied(copy_, start("wf-new", ["b"]), complete("wf-3", "a"))
    assert list(copy_.snapshot_chunks(copy_.applied_index)) == _pieces_written_one_by_one(copy_)

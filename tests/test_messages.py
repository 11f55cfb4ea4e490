"""Tests of the Raft value types: repr, validation, ConfChange encoding, sizes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.raft.messages import (
    CAMPAIGN_TRANSFER,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageKinds,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)
from simulator.raft.progress import ProgressState, ProgressStates
from simulator.raft.role import Role, Roles

#: What ``eval`` needs to rebuild any value from its repr.
NAMESPACE = {
    cls.__name__: cls
    for cls in (
        ConfChange,
        ConfChangeType,
        ConfState,
        Entry,
        EntryType,
        HardState,
        Message,
        MessageType,
        Snapshot,
        SnapshotMetadata,
    )
}

METADATA = SnapshotMetadata(
    index=8,
    term=3,
    conf_state=ConfState(voters=(1, 2, 3), learners=(4,)),
    size=5,
    digest="sha256:abc",
    snapshot_id="3-8-abc",
)


def rebuilt(value: object) -> object:
    return eval(repr(value), {"__builtins__": {}}, NAMESPACE)


# -- repr ------------------------------------------------------------------------

VALUES = [
    Entry(term=1, index=2),
    Entry(term=2, index=3, data=b"\x00\xffset x"),
    Entry(
        term=2,
        index=4,
        data=ConfChange(ConfChangeType.ADD_LEARNER_NODE, 4).encode(),
        entry_type=EntryType.CONF_CHANGE,
    ),
    HardState(),
    HardState(term=3, vote=2, commit=7),
    ConfState(),
    ConfState(voters=(1,)),
    ConfState(voters=(1, 2, 3), learners=(4, 5)),
    SnapshotMetadata(),
    METADATA,
    Snapshot(),
    Snapshot(metadata=METADATA),
    Snapshot(metadata=METADATA, data=b"12345"),
    Snapshot(metadata=METADATA, data=b""),
    ConfChange(ConfChangeType.REMOVE_NODE, 3),
    ConfChange(ConfChangeType.ADD_NODE, 2, context=b"ctx"),
    Message(MessageType.HUP),
    Message(
        MessageType.APPEND,
        to=2,
        from_=1,
        term=3,
        log_term=2,
        index=4,
        entries=(Entry(term=3, index=5, data=b"a"), Entry(term=3, index=6)),
        commit=4,
    ),
    Message(
        MessageType.APPEND_RESPONSE, to=1, from_=2, term=3, index=4, reject=True, reject_hint=2
    ),
    Message(MessageType.SNAPSHOT, to=2, from_=1, term=3, snapshot=Snapshot(METADATA, b"12345")),
    Message(MessageType.REQUEST_VOTE, to=2, from_=1, term=4, context=CAMPAIGN_TRANSFER),
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_repr_evals_back_to_an_equal_value(value):
    assert rebuilt(value) == value


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Entry(term=1, index=2), "Entry(term=1, index=2)"),
        (HardState(), "HardState()"),
        (HardState(commit=3), "HardState(commit=3)"),
        (ConfState(), "ConfState()"),
        (ConfState(learners=(4,)), "ConfState(learners=(4,))"),
        (SnapshotMetadata(index=8, term=3), "SnapshotMetadata(index=8, term=3)"),
        (Snapshot(), "Snapshot()"),
        (
            ConfChange(ConfChangeType.ADD_NODE, 2),
            "ConfChange(change_type=ConfChangeType.ADD_NODE, node_id=2)",
        ),
        (Message(MessageType.BEAT), "Message(msg_type=MessageType.BEAT)"),
        (
            Message(MessageType.HEARTBEAT, to=2, from_=1),
            "Message(msg_type=MessageType.HEARTBEAT, to=2, from_=1)",
        ),
    ],
)
def test_repr_omits_fields_left_at_their_default(value, text):
    assert repr(value) == text


def test_repr_shows_field_set_to_a_non_default_value_that_looks_empty():
    # data=b"" is an embedded empty snapshot, not "metadata only" (None).
    assert repr(Snapshot(data=b"")) == "Snapshot(data=b'')"


def test_repr_of_entry_with_non_default_type_names_the_enum_member():
    entry = Entry(term=1, index=1, entry_type=EntryType.CONF_CHANGE)
    assert repr(entry) == "Entry(term=1, index=1, entry_type=EntryType.CONF_CHANGE)"


@pytest.mark.parametrize("member", [*MessageType, *EntryType, *ConfChangeType], ids=str)
def test_enum_repr_is_the_expression_naming_the_member(member):
    assert repr(member) == f"{type(member).__name__}.{member.name}"
    assert rebuilt(member) is member


entry_strategy = st.builds(
    Entry,
    term=st.integers(min_value=0, max_value=2**32),
    index=st.integers(min_value=0, max_value=2**32),
    data=st.binary(max_size=20),
    entry_type=st.sampled_from(EntryType),
)
conf_state_strategy = st.builds(
    lambda ids, split: ConfState.of(voters=sorted(ids)[:split], learners=sorted(ids)[split:]),
    st.sets(st.integers(min_value=1, max_value=1000), max_size=6),
    st.integers(min_value=0, max_value=6),
)
snapshot_strategy = st.builds(
    Snapshot,
    metadata=st.builds(
        SnapshotMetadata,
        index=st.integers(min_value=0, max_value=1000),
        term=st.integers(min_value=0, max_value=1000),
        conf_state=conf_state_strategy,
        size=st.integers(min_value=0, max_value=10**9),
        digest=st.text(max_size=10),
        snapshot_id=st.text(max_size=10),
    ),
    data=st.none() | st.binary(max_size=20),
)
message_strategy = st.builds(
    Message,
    msg_type=st.sampled_from(MessageType),
    to=st.integers(min_value=0, max_value=9),
    from_=st.integers(min_value=0, max_value=9),
    term=st.integers(min_value=0, max_value=100),
    log_term=st.integers(min_value=0, max_value=100),
    index=st.integers(min_value=0, max_value=100),
    entries=st.lists(entry_strategy, max_size=3).map(tuple),
    commit=st.integers(min_value=0, max_value=100),
    snapshot=st.none() | snapshot_strategy,
    reject=st.booleans(),
    reject_hint=st.integers(min_value=0, max_value=100),
    context=st.binary(max_size=8),
)


@given(message_strategy)
def test_repr_of_any_message_evals_back_to_it(message):
    assert rebuilt(message) == message


@given(
    st.builds(
        HardState, term=st.integers(0, 50), vote=st.integers(0, 9), commit=st.integers(0, 50)
    )
)
def test_repr_of_any_hard_state_evals_back_to_it(hard_state):
    assert rebuilt(hard_state) == hard_state


# -- ConfState -------------------------------------------------------------------


def test_conf_state_rejects_unsorted_voters():
    with pytest.raises(ValueError, match=r"voters must be sorted and unique, got \(2, 1\)"):
        ConfState(voters=(2, 1))


def test_conf_state_rejects_duplicate_voters():
    with pytest.raises(ValueError, match=r"voters must be sorted and unique, got \(1, 1\)"):
        ConfState(voters=(1, 1))


def test_conf_state_rejects_unsorted_learners():
    with pytest.raises(ValueError, match=r"learners must be sorted and unique, got \(5, 4\)"):
        ConfState(learners=(5, 4))


def test_conf_state_rejects_duplicate_learners():
    with pytest.raises(ValueError, match=r"learners must be sorted and unique, got \(4, 4\)"):
        ConfState(learners=(4, 4))


def test_conf_state_rejects_a_node_that_is_both_voter_and_learner():
    with pytest.raises(ValueError, match=r"either a voter or a learner, not both: \[2\]"):
        ConfState(voters=(1, 2), learners=(2, 3))


@pytest.mark.parametrize(
    "fields", [{"voters": (0, 1)}, {"learners": (0,)}], ids=["voter", "learner"]
)
def test_conf_state_rejects_node_id_zero(fields):
    with pytest.raises(ValueError, match="node ids must be integers >= 1, got 0"):
        ConfState(**fields)


def test_conf_state_of_sorts_any_iterables():
    conf_state = ConfState.of(voters=[3, 1, 2], learners={5, 4})
    assert conf_state == ConfState(voters=(1, 2, 3), learners=(4, 5))


def test_conf_state_of_still_rejects_duplicates():
    with pytest.raises(ValueError, match="sorted and unique"):
        ConfState.of(voters=[1, 1])


def test_conf_state_members_are_voters_and_learners_sorted():
    assert ConfState(voters=(2, 5), learners=(1, 3)).members == (1, 2, 3, 5)


# -- ConfChange encoding ---------------------------------------------------------


@given(
    change_type=st.sampled_from(ConfChangeType),
    node_id=st.integers(min_value=1, max_value=2**64 - 1),
    context=st.binary(max_size=64),
)
def test_conf_change_decode_inverts_encode(change_type, node_id, context):
    change = ConfChange(change_type, node_id, context)
    assert ConfChange.decode(change.encode()) == change


def test_conf_change_encodings_differ_by_type_node_and_context():
    encodings = {
        ConfChange(ConfChangeType.ADD_NODE, 2).encode(),
        ConfChange(ConfChangeType.REMOVE_NODE, 2).encode(),
        ConfChange(ConfChangeType.ADD_NODE, 3).encode(),
        ConfChange(ConfChangeType.ADD_NODE, 2, b"x").encode(),
    }
    assert len(encodings) == 4


VALID_ENCODING = ConfChange(ConfChangeType.ADD_NODE, 7).encode()


@pytest.mark.parametrize("length", range(len(VALID_ENCODING)))
def test_conf_change_decode_of_short_data_names_the_needed_length(length):
    expected = f"needs at least {len(VALID_ENCODING)} bytes, got {length}"
    with pytest.raises(ValueError, match=expected):
        ConfChange.decode(VALID_ENCODING[:length])


@pytest.mark.parametrize("kind", [3, 7, 255])
def test_conf_change_decode_of_unknown_type_names_the_known_ones(kind):
    data = bytes([kind]) + VALID_ENCODING[1:]
    with pytest.raises(ValueError, match=rf"type must be one of \[0, 1, 2\], got {kind}"):
        ConfChange.decode(data)


def test_conf_change_decode_of_node_id_zero_raises():
    data = VALID_ENCODING[:1] + bytes(len(VALID_ENCODING) - 1)  # ADD_NODE, node id 0
    with pytest.raises(ValueError, match=r"node id must be in \[1, 2\*\*64\), got 0"):
        ConfChange.decode(data)


# -- Message.size ----------------------------------------------------------------

SNAPSHOT_DATA = b"s" * 1_000_000


def test_message_size_grows_by_entry_data_length():
    empty = Message(MessageType.APPEND, entries=(Entry(term=1, index=1),))
    full = Message(MessageType.APPEND, entries=(Entry(term=1, index=1, data=b"x" * 100),))
    assert full.size - empty.size == 100


def test_message_size_counts_every_entry_even_without_data():
    one = Message(MessageType.APPEND, entries=(Entry(term=1, index=1),))
    two = Message(MessageType.APPEND, entries=(Entry(term=1, index=1), Entry(term=1, index=2)))
    assert two.size > one.size > Message(MessageType.APPEND).size


def test_message_size_grows_by_context_length():
    plain = Message(MessageType.REQUEST_VOTE)
    transfer = Message(MessageType.REQUEST_VOTE, context=CAMPAIGN_TRANSFER)
    assert transfer.size - plain.size == len(CAMPAIGN_TRANSFER)


def test_message_size_grows_by_embedded_snapshot_data_length():
    metadata_only = Message(MessageType.SNAPSHOT, snapshot=Snapshot(METADATA))
    embedded = Message(MessageType.SNAPSHOT, snapshot=Snapshot(METADATA, SNAPSHOT_DATA))
    assert embedded.size - metadata_only.size == len(SNAPSHOT_DATA)


def test_message_with_metadata_only_snapshot_is_small_whatever_size_it_announces():
    announced = SnapshotMetadata(
        index=8, term=3, conf_state=ConfState(voters=(1, 2, 3)), size=10**9
    )
    message = Message(MessageType.SNAPSHOT, snapshot=Snapshot(announced, None))
    assert message.size < 1024


def test_message_size_of_snapshot_counts_membership():
    def snapshot_message(voters: tuple[int, ...]) -> Message:
        metadata = SnapshotMetadata(conf_state=ConfState(voters=voters))
        return Message(MessageType.SNAPSHOT, snapshot=Snapshot(metadata))

    assert snapshot_message((1, 2, 3)).size > snapshot_message((1,)).size


def test_message_size_counts_a_snapshot_even_without_data():
    with_snapshot = Message(MessageType.SNAPSHOT, snapshot=Snapshot())
    assert with_snapshot.size > Message(MessageType.SNAPSHOT).size


# -- is_local / is_response ---------------------------------------------------------

LOCAL = {
    MessageType.HUP,
    MessageType.BEAT,
    MessageType.CHECK_QUORUM,
    MessageType.SNAP_STATUS,
    MessageType.UNREACHABLE,
}
RESPONSES = {
    MessageType.APPEND_RESPONSE,
    MessageType.REQUEST_VOTE_RESPONSE,
    MessageType.REQUEST_PRE_VOTE_RESPONSE,
    MessageType.HEARTBEAT_RESPONSE,
}


@pytest.mark.parametrize("msg_type", MessageType, ids=str)
def test_only_messages_produced_inside_a_node_are_local(msg_type):
    assert Message(msg_type).is_local == (msg_type in LOCAL)


@pytest.mark.parametrize("msg_type", MessageType, ids=str)
def test_only_replies_are_responses(msg_type):
    assert Message(msg_type).is_response == (msg_type in RESPONSES)


# -- small properties -------------------------------------------------------------


def test_entry_size_is_its_data_length():
    assert Entry(term=1, index=1, data=b"abc").size == 3


def test_entry_defaults_to_normal_with_no_data():
    entry = Entry(term=1, index=1)
    assert (entry.data, entry.entry_type) == (b"", EntryType.NORMAL)


def test_snapshot_index_and_term_come_from_metadata():
    snapshot = Snapshot(METADATA)
    assert (snapshot.index, snapshot.term) == (8, 3)


def test_snapshot_at_index_zero_is_empty():
    assert Snapshot().is_empty
    assert not Snapshot(METADATA).is_empty


def test_snapshot_has_data_unless_data_is_none():
    assert not Snapshot(METADATA).has_data
    assert Snapshot(METADATA, b"").has_data


def test_values_are_immutable():
    with pytest.raises(AttributeError):
        Entry(term=1, index=1).term = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("namespace", "enum_type"),
    [(MessageKinds, MessageType), (Roles, Role), (ProgressStates, ProgressState)],
)
def test_member_namespaces_hold_every_enum_member_itself(namespace, enum_type):
    # The core compares kinds, roles and progress states by identity through these
    # plain classes: a member missing there (added to the enum only) or a copy of
    # one would misroute messages.
    listed = {name: value for name, value in vars(namespace).items() if not name.startswith("_")}
    assert sorted(listed) == sorted(member.name for member in enum_type)
    for member in enum_type:
        assert listed[member.name] is member

from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StatusRequest(_message.Message):
    __slots__ = ("with_digest",)
    WITH_DIGEST_FIELD_NUMBER: _ClassVar[int]
    with_digest: bool
    def __init__(self, with_digest: _Optional[bool] = ...) -> None: ...

class TransferStatus(_message.Message):
    __slots__ = ("peer", "incoming", "snapshot_index", "snapshot_id", "size", "verified_offset", "bytes_sent", "resent_bytes", "largest_resend", "resumptions", "outcome", "resumed_from")
    PEER_FIELD_NUMBER: _ClassVar[int]
    INCOMING_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_INDEX_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_OFFSET_FIELD_NUMBER: _ClassVar[int]
    BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    RESENT_BYTES_FIELD_NUMBER: _ClassVar[int]
    LARGEST_RESEND_FIELD_NUMBER: _ClassVar[int]
    RESUMPTIONS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FROM_FIELD_NUMBER: _ClassVar[int]
    peer: int
    incoming: bool
    snapshot_index: int
    snapshot_id: str
    size: int
    verified_offset: int
    bytes_sent: int
    resent_bytes: int
    largest_resend: int
    resumptions: int
    outcome: str
    resumed_from: int
    def __init__(self, peer: _Optional[int] = ..., incoming: _Optional[bool] = ..., snapshot_index: _Optional[int] = ..., snapshot_id: _Optional[str] = ..., size: _Optional[int] = ..., verified_offset: _Optional[int] = ..., bytes_sent: _Optional[int] = ..., resent_bytes: _Optional[int] = ..., largest_resend: _Optional[int] = ..., resumptions: _Optional[int] = ..., outcome: _Optional[str] = ..., resumed_from: _Optional[int] = ...) -> None: ...

class NodeStatus(_message.Message):
    __slots__ = ("node_id", "role", "term", "leader_id", "leader_address", "commit", "applied", "snapshot_index", "state_digest", "voters", "learners", "transfers", "last_index", "mode", "counters", "first_index")
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    LEADER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_INDEX_FIELD_NUMBER: _ClassVar[int]
    STATE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    VOTERS_FIELD_NUMBER: _ClassVar[int]
    LEARNERS_FIELD_NUMBER: _ClassVar[int]
    TRANSFERS_FIELD_NUMBER: _ClassVar[int]
    LAST_INDEX_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    FIRST_INDEX_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    role: str
    term: int
    leader_id: int
    leader_address: str
    commit: int
    applied: int
    snapshot_index: int
    state_digest: str
    voters: _containers.RepeatedScalarFieldContainer[int]
    learners: _containers.RepeatedScalarFieldContainer[int]
    transfers: _containers.RepeatedCompositeFieldContainer[TransferStatus]
    last_index: int
    mode: str
    counters: _containers.ScalarMap[str, int]
    first_index: int
    def __init__(self, node_id: _Optional[int] = ..., role: _Optional[str] = ..., term: _Optional[int] = ..., leader_id: _Optional[int] = ..., leader_address: _Optional[str] = ..., commit: _Optional[int] = ..., applied: _Optional[int] = ..., snapshot_index: _Optional[int] = ..., state_digest: _Optional[str] = ..., voters: _Optional[_Iterable[int]] = ..., learners: _Optional[_Iterable[int]] = ..., transfers: _Optional[_Iterable[_Union[TransferStatus, _Mapping]]] = ..., last_index: _Optional[int] = ..., mode: _Optional[str] = ..., counters: _Optional[_Mapping[str, int]] = ..., first_index: _Optional[int] = ...) -> None: ...

class ProposeRequest(_message.Message):
    __slots__ = ("command",)
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    command: bytes
    def __init__(self, command: _Optional[bytes] = ...) -> None: ...

class ProposeReply(_message.Message):
    __slots__ = ("ok", "result", "index", "leader_id", "leader_address", "error")
    OK_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    LEADER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    result: str
    index: int
    leader_id: int
    leader_address: str
    error: str
    def __init__(self, ok: _Optional[bool] = ..., result: _Optional[str] = ..., index: _Optional[int] = ..., leader_id: _Optional[int] = ..., leader_address: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class GetReply(_message.Message):
    __slots__ = ("ok", "found", "value", "leader_id", "leader_address", "error")
    OK_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    LEADER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    found: bool
    value: bytes
    leader_id: int
    leader_address: str
    error: str
    def __init__(self, ok: _Optional[bool] = ..., found: _Optional[bool] = ..., value: _Optional[bytes] = ..., leader_id: _Optional[int] = ..., leader_address: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class AddNodeRequest(_message.Message):
    __slots__ = ("node_id", "address", "as_learner")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    AS_LEARNER_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    address: str
    as_learner: bool
    def __init__(self, node_id: _Optional[int] = ..., address: _Optional[str] = ..., as_learner: _Optional[bool] = ...) -> None: ...

class RemoveNodeRequest(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    def __init__(self, node_id: _Optional[int] = ...) -> None: ...

class MembershipReply(_message.Message):
    __slots__ = ("ok", "index", "voters", "learners", "leader_id", "leader_address", "error")
    OK_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    VOTERS_FIELD_NUMBER: _ClassVar[int]
    LEARNERS_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    LEADER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    index: int
    voters: _containers.RepeatedScalarFieldContainer[int]
    learners: _containers.RepeatedScalarFieldContainer[int]
    leader_id: int
    leader_address: str
    error: str
    def __init__(self, ok: _Optional[bool] = ..., index: _Optional[int] = ..., voters: _Optional[_Iterable[int]] = ..., learners: _Optional[_Iterable[int]] = ..., leader_id: _Optional[int] = ..., leader_address: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class CompactRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CompactReply(_message.Message):
    __slots__ = ("snapshot_index", "size", "snapshot_id")
    SNAPSHOT_INDEX_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    snapshot_index: int
    size: int
    snapshot_id: str
    def __init__(self, snapshot_index: _Optional[int] = ..., size: _Optional[int] = ..., snapshot_id: _Optional[str] = ...) -> None: ...

from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MessageType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MESSAGE_TYPE_UNSPECIFIED: _ClassVar[MessageType]
    PROPOSE: _ClassVar[MessageType]
    APPEND: _ClassVar[MessageType]
    APPEND_RESPONSE: _ClassVar[MessageType]
    REQUEST_VOTE: _ClassVar[MessageType]
    REQUEST_VOTE_RESPONSE: _ClassVar[MessageType]
    REQUEST_PRE_VOTE: _ClassVar[MessageType]
    REQUEST_PRE_VOTE_RESPONSE: _ClassVar[MessageType]
    SNAPSHOT: _ClassVar[MessageType]
    HEARTBEAT: _ClassVar[MessageType]
    HEARTBEAT_RESPONSE: _ClassVar[MessageType]
    TRANSFER_LEADER: _ClassVar[MessageType]
    TIMEOUT_NOW: _ClassVar[MessageType]
    READ_INDEX: _ClassVar[MessageType]
    READ_INDEX_RESPONSE: _ClassVar[MessageType]

class EntryType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NORMAL: _ClassVar[EntryType]
    CONF_CHANGE: _ClassVar[EntryType]
    CONF_CHANGE_V2: _ClassVar[EntryType]
MESSAGE_TYPE_UNSPECIFIED: MessageType
PROPOSE: MessageType
APPEND: MessageType
APPEND_RESPONSE: MessageType
REQUEST_VOTE: MessageType
REQUEST_VOTE_RESPONSE: MessageType
REQUEST_PRE_VOTE: MessageType
REQUEST_PRE_VOTE_RESPONSE: MessageType
SNAPSHOT: MessageType
HEARTBEAT: MessageType
HEARTBEAT_RESPONSE: MessageType
TRANSFER_LEADER: MessageType
TIMEOUT_NOW: MessageType
READ_INDEX: MessageType
READ_INDEX_RESPONSE: MessageType
NORMAL: EntryType
CONF_CHANGE: EntryType
CONF_CHANGE_V2: EntryType

class Entry(_message.Message):
    __slots__ = ("term", "index", "data", "entry_type")
    TERM_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ENTRY_TYPE_FIELD_NUMBER: _ClassVar[int]
    term: int
    index: int
    data: bytes
    entry_type: EntryType
    def __init__(self, term: _Optional[int] = ..., index: _Optional[int] = ..., data: _Optional[bytes] = ..., entry_type: _Optional[_Union[EntryType, str]] = ...) -> None: ...

class ConfState(_message.Message):
    __slots__ = ("voters", "learners", "voters_outgoing", "learners_next", "auto_leave")
    VOTERS_FIELD_NUMBER: _ClassVar[int]
    LEARNERS_FIELD_NUMBER: _ClassVar[int]
    VOTERS_OUTGOING_FIELD_NUMBER: _ClassVar[int]
    LEARNERS_NEXT_FIELD_NUMBER: _ClassVar[int]
    AUTO_LEAVE_FIELD_NUMBER: _ClassVar[int]
    voters: _containers.RepeatedScalarFieldContainer[int]
    learners: _containers.RepeatedScalarFieldContainer[int]
    voters_outgoing: _containers.RepeatedScalarFieldContainer[int]
    learners_next: _containers.RepeatedScalarFieldContainer[int]
    auto_leave: bool
    def __init__(self, voters: _Optional[_Iterable[int]] = ..., learners: _Optional[_Iterable[int]] = ..., voters_outgoing: _Optional[_Iterable[int]] = ..., learners_next: _Optional[_Iterable[int]] = ..., auto_leave: _Optional[bool] = ...) -> None: ...

class SnapshotMetadata(_message.Message):
    __slots__ = ("index", "term", "conf_state", "size", "digest", "snapshot_id")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    CONF_STATE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    index: int
    term: int
    conf_state: ConfState
    size: int
    digest: str
    snapshot_id: str
    def __init__(self, index: _Optional[int] = ..., term: _Optional[int] = ..., conf_state: _Optional[_Union[ConfState, _Mapping]] = ..., size: _Optional[int] = ..., digest: _Optional[str] = ..., snapshot_id: _Optional[str] = ...) -> None: ...

class Snapshot(_message.Message):
    __slots__ = ("metadata", "data", "has_data")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    HAS_DATA_FIELD_NUMBER: _ClassVar[int]
    metadata: SnapshotMetadata
    data: bytes
    has_data: bool
    def __init__(self, metadata: _Optional[_Union[SnapshotMetadata, _Mapping]] = ..., data: _Optional[bytes] = ..., has_data: _Optional[bool] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("msg_type", "to", "term", "log_term", "index", "entries", "commit", "snapshot", "reject", "reject_hint", "context", "request_snapshot", "priority")
    MSG_TYPE_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    LOG_TERM_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    REJECT_FIELD_NUMBER: _ClassVar[int]
    REJECT_HINT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    msg_type: MessageType
    to: int
    term: int
    log_term: int
    index: int
    entries: _containers.RepeatedCompositeFieldContainer[Entry]
    commit: int
    snapshot: Snapshot
    reject: bool
    reject_hint: int
    context: bytes
    request_snapshot: int
    priority: int
    def __init__(self, msg_type: _Optional[_Union[MessageType, str]] = ..., to: _Optional[int] = ..., term: _Optional[int] = ..., log_term: _Optional[int] = ..., index: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[Entry, _Mapping]]] = ..., commit: _Optional[int] = ..., snapshot: _Optional[_Union[Snapshot, _Mapping]] = ..., reject: _Optional[bool] = ..., reject_hint: _Optional[int] = ..., context: _Optional[bytes] = ..., request_snapshot: _Optional[int] = ..., priority: _Optional[int] = ..., **kwargs) -> None: ...

class MessageBatch(_message.Message):
    __slots__ = ("to", "messages")
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    to: int
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    def __init__(self, to: _Optional[int] = ..., messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., **kwargs) -> None: ...

class SendReply(_message.Message):
    __slots__ = ("accepted", "refused")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    refused: int
    def __init__(self, accepted: _Optional[int] = ..., refused: _Optional[int] = ...) -> None: ...

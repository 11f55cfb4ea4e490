from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class SnapshotRequest(_message.Message):
    __slots__ = ("snapshot_index", "snapshot_term", "offset", "snapshot_id", "requester", "max_chunks", "max_bytes")
    SNAPSHOT_INDEX_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_TERM_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    snapshot_index: int
    snapshot_term: int
    offset: int
    snapshot_id: str
    requester: int
    max_chunks: int
    max_bytes: int
    def __init__(self, snapshot_index: _Optional[int] = ..., snapshot_term: _Optional[int] = ..., offset: _Optional[int] = ..., snapshot_id: _Optional[str] = ..., requester: _Optional[int] = ..., max_chunks: _Optional[int] = ..., max_bytes: _Optional[int] = ...) -> None: ...

class SnapshotChunk(_message.Message):
    __slots__ = ("data", "offset", "total_size", "is_final", "checksum", "snapshot_id", "snapshot_index", "snapshot_term", "sender", "digest", "checksum_version")
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    IS_FINAL_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_INDEX_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_TERM_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_VERSION_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    offset: int
    total_size: int
    is_final: bool
    checksum: int
    snapshot_id: str
    snapshot_index: int
    snapshot_term: int
    sender: int
    digest: str
    checksum_version: int
    def __init__(self, data: _Optional[bytes] = ..., offset: _Optional[int] = ..., total_size: _Optional[int] = ..., is_final: _Optional[bool] = ..., checksum: _Optional[int] = ..., snapshot_id: _Optional[str] = ..., snapshot_index: _Optional[int] = ..., snapshot_term: _Optional[int] = ..., sender: _Optional[int] = ..., digest: _Optional[str] = ..., checksum_version: _Optional[int] = ...) -> None: ...

"""A small, strict binary encoding for commands and state machine snapshots.

Why not pickle: snapshot bytes come over the transport and from disk, and
unpickling them would run whatever they say. Why not JSON: payloads are
arbitrary bytes and can be large, and base64 would inflate them by a third.

Format: a sequence of fields, each a one-byte tag and a value. Integers are
unsigned 64-bit big-endian; bytes and text are length-prefixed (32-bit).
:class:`Reader` raises :class:`DecodeError` naming the byte offset, what it
expected and what it found, so a truncated or corrupt snapshot is refused
with a message a person can act on.
"""

from __future__ import annotations

import struct

_INT = struct.Struct(">Q")
_LEN = struct.Struct(">I")
TAG_INT, TAG_BYTES, TAG_TEXT = b"i", b"b", b"t"
#: The tags as ``bytes[i]`` gives them, for the fast paths of :class:`Reader`.
_INT_TAG, _BYTES_TAG, _TEXT_TAG = TAG_INT[0], TAG_BYTES[0], TAG_TEXT[0]
_INT_FIELD = 1 + _INT.size
_LEN_FIELD = 1 + _LEN.size


class DecodeError(ValueError):
    """Bytes that are not a valid encoding: truncated, corrupt or of another version."""


class Writer:
    """Appends fields to a buffer; ``getvalue()`` returns the encoding."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        #: Bytes appended since the last :meth:`drain` (or since the start).
        self.pending = 0

    def int(self, value: int) -> Writer:
        if not 0 <= value < 2**64:
            raise ValueError(f"integers are encoded as unsigned 64-bit, got {value}")
        self._parts.append(TAG_INT + _INT.pack(value))
        self.pending += 1 + _INT.size
        return self

    def bytes(self, value: bytes) -> Writer:
        self._parts.append(TAG_BYTES + _LEN.pack(len(value)))
        self._parts.append(bytes(value))
        self.pending += 1 + _LEN.size + len(value)
        return self

    def text(self, value: str) -> Writer:
        encoded = value.encode("utf-8")
        self._parts.append(TAG_TEXT + _LEN.pack(len(encoded)) + encoded)
        self.pending += 1 + _LEN.size + len(encoded)
        return self

    def encoded(self, fields: bytes) -> Writer:
        """Append fields another ``Writer`` encoded (its ``getvalue()``), as they are."""
        self._parts.append(fields)
        self.pending += len(fields)
        return self

    def getvalue(self) -> bytes:
        return b"".join(self._parts)

    def drain(self) -> bytes:
        """The bytes appended so far, forgotten by the writer: a snapshot streams out
        its encoding piece by piece this way instead of building all of it first."""
        data = b"".join(self._parts)
        self._parts.clear()
        self.pending = 0
        return data


class Reader:
    """Reads fields back in the order they were written.

    ``data`` is either bytes or an iterable of byte chunks (a snapshot being
    streamed from a store): then only the chunks needed for the current
    field are held in memory, so restoring a large snapshot never needs the
    whole of it at once.
    """

    def __init__(self, data, what: str = "data") -> None:
        if isinstance(data, (bytes, bytearray, memoryview)):
            self._chunks = iter(())
            self._buffer = bytes(data)  # no copy for bytes
        else:
            self._chunks = iter(data)
            self._buffer = b""
        # The buffer is the current chunk itself, never a copy of it: a field inside
        # one chunk is sliced out of it, a field across chunks is gathered from them.
        self._position = 0  # read position inside _buffer
        self._consumed = 0  # bytes of the input before _buffer
        self._what = what

    @property
    def offset(self) -> int:
        """Bytes read so far."""
        return self._consumed + self._position

    def fail(self, at: int, expected: str, found: str) -> DecodeError:
        """An error naming byte ``at``, what was expected there, and what was found."""
        return DecodeError(f"{self._what}: at byte {at} expected {expected}, found {found}")

    def _fail(self, expected: str, found: str) -> DecodeError:
        return self.fail(self.offset, expected, found)

    def _next_chunk(self) -> bytes | None:
        """The next non-empty input chunk as bytes, or None at the end."""
        for chunk in self._chunks:
            if chunk:
                return chunk if type(chunk) is bytes else bytes(chunk)
        return None

    def _available(self, count: int) -> int:
        """Up to ``count`` unread bytes of the current chunk (moving on if it is read); how many."""
        if self._position == len(self._buffer):
            chunk = self._next_chunk()
            if chunk is not None:
                self._consumed += len(self._buffer)
                self._buffer, self._position = chunk, 0
        return min(count, len(self._buffer) - self._position)

    def _remaining(self) -> int:
        rest = sum(len(chunk) for chunk in self._chunks)  # only to say how much was left
        return len(self._buffer) - self._position + rest

    @property
    def at_end(self) -> bool:
        return self._available(1) == 0

    def _tag(self, tag: bytes, name: str) -> None:
        if self._available(1) == 0:
            raise self._fail(name, "end of data")
        found = self._buffer[self._position : self._position + 1]
        if found != tag:
            raise self._fail(f"{name} (tag {tag!r})", f"tag {found!r}")
        self._position += 1

    def _take(self, count: int, name: str) -> bytes:
        buffer, start = self._buffer, self._position
        if len(buffer) - start >= count:
            self._position = start + count
            return buffer[start : start + count]  # one copy (none for the whole buffer)
        return self._gather(count, name)

    def _gather(self, count: int, name: str) -> bytes:
        """A field that runs past the current chunk: join its pieces, copying each byte once."""
        parts = [self._buffer[self._position :]]
        needed = count - len(parts[0])
        while needed > 0:
            chunk = self._next_chunk()
            if chunk is None:
                raise self._fail(f"{count} bytes of {name}", f"{count - needed} left")
            if len(chunk) <= needed:
                parts.append(chunk)
                needed -= len(chunk)
                continue
            parts.append(chunk[:needed])
            self._consumed = self.offset + count - needed
            self._buffer, self._position = chunk, needed
            return b"".join(parts)
        self._consumed = self.offset + count
        self._buffer, self._position = b"", 0
        return b"".join(parts)

    # Fast paths: a whole, well-tagged field inside the current chunk (every field of a
    # command, nearly every field of a snapshot) is read with one unpack and one slice.
    # Anything else (a field across chunks, the end of data, a wrong tag, bad UTF-8)
    # goes the careful way below, from the same position, for the same errors.

    def int(self) -> int:
        buffer, position = self._buffer, self._position
        if len(buffer) - position >= _INT_FIELD and buffer[position] == _INT_TAG:
            self._position = position + _INT_FIELD
            return _INT.unpack_from(buffer, position + 1)[0]
        self._tag(TAG_INT, "an integer")
        return _INT.unpack(self._take(_INT.size, "integer"))[0]

    def bytes(self) -> bytes:
        buffer, position = self._buffer, self._position
        if len(buffer) - position >= _LEN_FIELD and buffer[position] == _BYTES_TAG:
            start = position + _LEN_FIELD
            end = start + _LEN.unpack_from(buffer, position + 1)[0]
            if end <= len(buffer):
                self._position = end
                return buffer[start:end]
        self._tag(TAG_BYTES, "bytes")
        (length,) = _LEN.unpack(self._take(_LEN.size, "length"))
        return self._take(length, "bytes")

    def text(self) -> str:
        buffer, position = self._buffer, self._position
        if len(buffer) - position >= _LEN_FIELD and buffer[position] == _TEXT_TAG:
            start = position + _LEN_FIELD
            end = start + _LEN.unpack_from(buffer, position + 1)[0]
            if end <= len(buffer):
                try:
                    value = buffer[start:end].decode("utf-8")
                except UnicodeDecodeError:
                    pass  # the careful way names the bad byte
                else:
                    self._position = end
                    return value
        self._tag(TAG_TEXT, "text")
        (length,) = _LEN.unpack(self._take(_LEN.size, "length"))
        start = self.offset
        raw = self._take(length, "text")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            bad = start + error.start
            raise self.fail(bad, "UTF-8 text", f"invalid byte 0x{raw[error.start]:02x}") from None

    def expect_end(self) -> None:
        if not self.at_end:
            raise self._fail("end of data", f"{self._remaining()} more bytes")

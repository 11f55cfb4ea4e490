"""What an object-store snapshot store needs from a bucket, and how it fails.

:class:`Bucket` is the handful of operations the shared logic in
:mod:`._object_store` is written against (put, get, ranged get, size, list,
delete, and a streaming upload that stays invisible until completed); the S3
and GCS modules each supply one over their cloud's own client library. Keys
are relative to the store's prefix.

Errors. A bucket turns its client's exceptions into the classes below, all
:class:`~simulator.snapshots.SnapshotStoreError` s, so a transport that
already handles store errors (ends the transfer, Raft retries) handles a
cloud outage the same way. Messages name the bucket, the key and what was
expected, never a credential. :class:`RetryPolicy` retries what retrying can
fix (connection errors, throttling, 5xx), a bounded number of times with
exponential backoff; its ``sleep`` is injectable, and the delays it sleeps
come from the attempt number only (no jitter, no clock), so a run that
needed retries takes the same decisions as one that did not.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar

import attrs

from .errors import SnapshotStoreError

T = TypeVar("T")


class ObjectStoreError(SnapshotStoreError):
    """An object store refused or failed a request (after any retries)."""


class BucketNotFoundError(ObjectStoreError):
    """The bucket does not exist (or this endpoint does not serve it)."""


class CredentialsError(ObjectStoreError):
    """The store refused the credentials (unknown key, bad signature, no permission)."""


class ObjectStoreUnavailableError(ObjectStoreError):
    """The store could not be reached or kept failing: retries are used up."""


class ObjectNotFoundError(ObjectStoreError, KeyError):
    """No object under that key."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Transient(Exception):
    """Raised inside a bucket operation for a failure worth retrying; carries the description."""


@attrs.frozen
class RetryPolicy:
    """Bounded retries with exponential backoff for transient failures.

    ``attempts`` counts the first try. The n-th retry waits
    ``min(base_delay * 2**(n-1), max_delay)`` seconds through ``sleep``; pass
    a recording function in tests, or ``lambda s: None`` inside a virtual-time
    run where wall time must not matter.
    """

    attempts: int = 4
    base_delay: float = 0.05
    max_delay: float = 1.0
    sleep: Callable[[float], None] = attrs.field(default=time.sleep, repr=False)

    def __attrs_post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 1:
            raise ValueError(f"attempts must be an integer >= 1, got {self.attempts!r}")
        if not self.base_delay >= 0 or not self.max_delay >= 0:
            raise ValueError(f"delays must be >= 0, got base {self.base_delay!r}, max {self.max_delay!r}")

    def delay(self, retry: int) -> float:
        return min(self.base_delay * 2 ** (retry - 1), self.max_delay)

    def run(self, what: str, operation: Callable[[], T]) -> T:
        """``operation()``, retried while it raises :class:`Transient`; then
        :class:`ObjectStoreUnavailableError` naming ``what`` and the last failure."""
        for attempt in range(1, self.attempts + 1):
            try:
                return operation()
            except Transient as failure:
                last = str(failure)
                if attempt < self.attempts:
                    self.sleep(self.delay(attempt))
        raise ObjectStoreUnavailableError(
            f"{what} failed {self.attempts} time(s), last: {last}; a reachable, working object store expected"
        )


class PendingUpload(Protocol):
    """A streamed upload whose object does not exist until :meth:`complete`."""

    size: int
    digest: str

    def complete(self) -> None:
        """Make the object visible under its key (replacing any object there)."""

    def abort(self) -> None:
        """Throw the uploaded bytes away; harmless after a failure or twice."""


class Bucket(Protocol):
    """One bucket and prefix of an object store; see the module docstring."""

    #: Where the store lives, for messages and locations: ``s3://bucket/prefix``; never a secret.
    url: str

    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> None:
        """Store a small object whole. ``if_absent``: refuse (``ObjectStoreError``)
        if the key exists, where the server supports conditional creation."""

    def get(self, key: str) -> bytes:
        """A small object whole; ``ObjectNotFoundError`` if there is none."""

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Bytes ``start .. start+length`` (fewer at the end of the object)."""

    def size(self, key: str) -> int | None:
        """The object's size, ``None`` if there is no object under ``key``."""

    def list(self, prefix: str = "") -> list[tuple[str, int]]:
        """``(key, size)`` of every object whose key starts with ``prefix``, sorted by key."""

    def delete(self, key: str) -> None:
        """Remove the object; nothing happens if it is already gone."""

    def upload(self, key: str, chunks: Iterator[bytes], *, hasher) -> PendingUpload:
        """Stream ``chunks`` into a pending upload (multipart or resumable), feeding
        each to ``hasher``; on any failure the upload is aborted before raising."""


def object_url(scheme: str, bucket: str, prefix: str) -> str:
    return f"{scheme}://{bucket}/{prefix}" if prefix else f"{scheme}://{bucket}"


def normalize_prefix(prefix: object) -> str:
    """``a/b`` for ``/a/b/``, ``""`` for none; keys are then ``a/b/<name>``."""
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a string, got {type(prefix).__name__}")
    parts = [part for part in prefix.split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise ValueError(f"prefix must not contain '.' or '..' segments, got {prefix!r}")
    return "/".join(parts)


def check_part_size(part_size: object, minimum: int, multiple: int = 1) -> int:
    if isinstance(part_size, bool) or not isinstance(part_size, int) or part_size < minimum:
        raise ValueError(f"part_size must be an integer >= {minimum} bytes, got {part_size!r}")
    if part_size % multiple:
        raise ValueError(f"part_size must be a multiple of {multiple} bytes, got {part_size}")
    return part_size

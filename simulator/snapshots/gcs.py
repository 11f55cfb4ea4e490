"""``GCSSnapshotStore``: snapshots in a Google Cloud Storage bucket.

Built on google-cloud-storage, Google's own client: resumable uploads (the
object exists only once the last chunk is sent), ranged downloads, and
conditional creation (``if_generation_match=0``). Credentials come the
standard way: ``credentials=`` when given, else Application Default
Credentials (``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's login, the
metadata server). The endpoint can be overridden with ``endpoint=`` or, as
the client itself supports, ``STORAGE_EMULATOR_HOST`` (which also means
anonymous access); ``anonymous=True`` is for emulators reached through
``endpoint=``. The client's own retries are turned off so that one bounded
:class:`~simulator.snapshots.RetryPolicy` decides.

What is shared with S3 is in :mod:`._object_store`. Needs the ``cloud``
extra: ``pip install 'raftsim[cloud]'``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from ._bucket import (
    BucketNotFoundError,
    CredentialsError,
    ObjectNotFoundError,
    ObjectStoreError,
    RetryPolicy,
    Transient,
    check_part_size,
    normalize_prefix,
    object_url,
)
from ._object_store import ObjectSnapshotStore
from .base import DEFAULT_CHUNK_SIZE
from .metadata import hasher_digest

try:
    import google.api_core.exceptions as api_errors
    import google.auth.exceptions as auth_errors
    import requests.exceptions
    from google.cloud import storage
except ImportError as missing:  # pragma: no cover - depends on the installation
    raise ImportError(
        f"GCSSnapshotStore needs google-cloud-storage ({missing}); install the cloud extra: "
        "pip install 'raftsim[cloud]'"
    ) from None

#: Resumable upload chunks must be multiples of 256 KiB.
PART_MULTIPLE = 256 * 1024
DEFAULT_PART_SIZE = 8 * 1024 * 1024

_NETWORK_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    auth_errors.TransportError,
    api_errors.ServerError,
    api_errors.TooManyRequests,
    ConnectionError,
)


class _GCSUpload:
    """One upload at ``complete`` if the data fits in a part, else a resumable upload
    that is finalized (becomes visible) only in :meth:`complete`. At most one part
    is held in memory; an unfinalized session leaves no object."""

    def __init__(self, bucket: GCSBucket, key: str, chunks: Iterator[bytes], hasher: Any) -> None:
        self._bucket, self._key = bucket, key
        self._writer = None
        self.size = 0
        buffer = bytearray()
        try:
            for chunk in chunks:
                hasher.update(chunk)
                self.size += len(chunk)
                buffer += chunk
                while len(buffer) >= bucket.part_size:
                    with memoryview(buffer) as view:
                        part = bytes(view[: bucket.part_size])  # one copy, not two
                    del buffer[: bucket.part_size]
                    self._send(part)
                    del part
        except BaseException:
            self.abort()
            raise
        self._tail = bytes(buffer)
        self.digest = hasher_digest(hasher)

    def _send(self, data: bytes) -> None:
        bucket = self._bucket
        if self._writer is None:
            blob = bucket.blob(self._key)
            self._writer = bucket.guard(f"start resumable upload of {self._key}", lambda: blob.open(
                "wb", chunk_size=bucket.part_size, retry=None, timeout=bucket.timeout, ignore_flush=True))
        # No retry here: a resumable session that failed mid-chunk is abandoned whole.
        bucket.guard(f"upload {len(data)} bytes of {self._key}", lambda: self._writer.write(data), retries=False)

    def complete(self) -> None:
        try:
            if self._writer is None:
                self._bucket.put(self._key, self._tail)
                return
            if self._tail:
                self._send(self._tail)
            self._bucket.guard(f"finish upload of {self._key}", self._writer.close, retries=False)
            self._writer = None
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        # Never finalized, the session leaves no object; GCS forgets it within a week.
        self._writer = None


class GCSBucket:
    """The :class:`~simulator.snapshots._bucket.Bucket` operations over a storage client."""

    def __init__(self, client: Any, name: str, prefix: str, *, part_size: int, retry: RetryPolicy,
                 timeout: float) -> None:
        self._client = client
        self._bucket = client.bucket(name)
        self.name = name
        self.prefix = normalize_prefix(prefix)
        self.part_size = check_part_size(part_size, PART_MULTIPLE, PART_MULTIPLE)
        self.retry = retry
        self.timeout = timeout
        self.url = object_url("gs", name, self.prefix)

    def __repr__(self) -> str:
        return f"<GCSBucket {self.url!r}>"

    def blob(self, key: str) -> Any:
        return self._bucket.blob(f"{self.prefix}/{key}" if self.prefix else key)

    def guard(self, what: str, operation: Callable[[], Any], *, retries: bool = True) -> Any:
        """``operation()`` with the client's errors translated, retried when transient."""
        where = f"{what} in {self.url}"

        def attempt():
            try:
                return operation()
            except api_errors.NotFound:
                raise ObjectNotFoundError(f"{where}: no such object") from None
            except (api_errors.Unauthorized, api_errors.Forbidden) as error:
                raise CredentialsError(f"{where}: the credentials were refused ({error.code}); "
                                       "credentials allowed to use this bucket expected") from None
            except auth_errors.DefaultCredentialsError:
                raise CredentialsError(f"{where}: no Google credentials found; expected credentials=, "
                                       "GOOGLE_APPLICATION_CREDENTIALS or a gcloud login") from None
            except auth_errors.RefreshError as error:
                raise CredentialsError(f"{where}: the credentials could not be refreshed "
                                       f"({type(error).__name__})") from None
            except api_errors.PreconditionFailed:
                raise ObjectStoreError(f"{where}: the object already exists; a new key expected") from None
            except _NETWORK_ERRORS as error:
                failure = Transient(f"{type(error).__name__}: {error}")
                if not retries:
                    raise ObjectStoreError(f"{where} failed: {failure}; the upload was abandoned") from None
                raise failure from None
            except api_errors.GoogleAPICallError as error:
                raise ObjectStoreError(f"{where}: GCS error {error.code}") from None

        return self.retry.run(where, attempt)

    # -- Bucket --------------------------------------------------------------------

    def check(self) -> None:
        """Fail now, clearly, if the bucket is missing or the credentials refused."""
        try:
            self.guard("open", lambda: self._bucket.reload(retry=None, timeout=self.timeout))
        except ObjectNotFoundError:
            raise BucketNotFoundError(
                f"open {self.url}: bucket {self.name!r} does not exist; an existing bucket expected"
            ) from None

    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> None:
        blob = self.blob(key)
        condition = {"if_generation_match": 0} if if_absent else {}
        self.guard(f"put {key}", lambda: blob.upload_from_string(
            data, content_type="application/octet-stream", retry=None, timeout=self.timeout, **condition))

    def get(self, key: str) -> bytes:
        blob = self.blob(key)
        return self.guard(f"get {key}", lambda: blob.download_as_bytes(retry=None, timeout=self.timeout))

    def get_range(self, key: str, start: int, length: int) -> bytes:
        if length <= 0:
            return b""
        blob = self.blob(key)
        end = start + length - 1  # inclusive
        return self.guard(f"get bytes {start}-{end} of {key}", lambda: blob.download_as_bytes(
            start=start, end=end, retry=None, timeout=self.timeout, checksum=None))

    def size(self, key: str) -> int | None:
        name = self.blob(key).name
        blob = self.guard(f"head {key}", lambda: self._bucket.get_blob(name, retry=None, timeout=self.timeout))
        return None if blob is None else int(blob.size)

    def list(self, prefix: str = "") -> list[tuple[str, int]]:
        base = f"{self.prefix}/" if self.prefix else ""

        def listing():
            blobs = self._client.list_blobs(self.name, prefix=base + prefix, retry=None, timeout=self.timeout)
            return [(blob.name[len(base):], int(blob.size)) for blob in blobs]

        try:
            return sorted(self.guard(f"list {prefix or '/'}", listing))
        except ObjectNotFoundError:
            raise BucketNotFoundError(
                f"list {self.url}: bucket {self.name!r} does not exist; an existing bucket expected"
            ) from None

    def delete(self, key: str) -> None:
        blob = self.blob(key)
        try:
            self.guard(f"delete {key}", lambda: blob.delete(retry=None, timeout=self.timeout))
        except ObjectNotFoundError:
            pass

    def upload(self, key: str, chunks: Iterator[bytes], *, hasher: Any) -> _GCSUpload:
        return _GCSUpload(self, key, chunks, hasher)


def gcs_client(*, project: str | None = None, credentials: Any = None, endpoint: str | None = None,
               anonymous: bool = False) -> Any:
    """A storage client from the standard credential chain, or anonymous for an emulator."""
    options = {"api_endpoint": endpoint} if endpoint else None
    if anonymous:
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project=project or "raftsim", credentials=AnonymousCredentials(),
                              client_options=options)
    try:
        return storage.Client(project=project, credentials=credentials, client_options=options)
    except auth_errors.DefaultCredentialsError:
        raise CredentialsError(
            "no Google credentials found; expected credentials=, GOOGLE_APPLICATION_CREDENTIALS, "
            "a gcloud login, or STORAGE_EMULATOR_HOST for an emulator"
        ) from None


class GCSSnapshotStore(ObjectSnapshotStore):
    """A :class:`~simulator.snapshots.SnapshotStore` in ``gs://bucket/prefix``.

    Same behaviour as :class:`~simulator.snapshots.s3.S3SnapshotStore`; see the
    module docstring for credentials and endpoints. ``part_size`` (a multiple
    of 256 KiB) is the resumable upload's chunk and the most a save or commit
    holds in memory.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        project: str | None = None,
        credentials: Any = None,
        endpoint: str | None = None,
        anonymous: bool = False,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        part_size: int = DEFAULT_PART_SIZE,
        clock: Callable[[], float] = time.time,
        retry: RetryPolicy = RetryPolicy(),
        timeout: float = 30.0,
        client: Any = None,
    ) -> None:
        if not isinstance(bucket, str) or not bucket:
            raise ValueError(f"bucket must be a non-empty bucket name, got {bucket!r}")
        if client is None:
            client = gcs_client(project=project, credentials=credentials, endpoint=endpoint, anonymous=anonymous)
        gcs_bucket = GCSBucket(client, bucket, prefix, part_size=part_size, retry=retry, timeout=timeout)
        gcs_bucket.check()
        self.endpoint = endpoint
        super().__init__(gcs_bucket, chunk_size=chunk_size, clock=clock)

"""``S3SnapshotStore``: snapshots in an S3 bucket (or any S3-compatible server).

Built on boto3, AWS's own SDK: it speaks S3's multipart uploads, ranged GETs
and conditional writes (``If-None-Match: *``), and it finds credentials the
standard way (explicit arguments, then ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` and the
shared config and credentials files, then instance roles). The endpoint can
be overridden (``endpoint_url=``, or ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL`` in the environment) for MinIO, moto's server, or a
test double. boto3's own retries are turned off so that one bounded
:class:`~simulator.snapshots.RetryPolicy` decides.

What is shared with GCS (layout, visibility, recovery) is in
:mod:`._object_store`. Needs the ``cloud`` extra: ``pip install 'raftsim[cloud]'``.
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
    import boto3
    import botocore.config
    import botocore.exceptions
except ImportError as missing:  # pragma: no cover - depends on the installation
    raise ImportError(
        f"S3SnapshotStore needs boto3 ({missing}); install the cloud extra: pip install 'raftsim[cloud]'"
    ) from None

#: S3 refuses parts under 5 MiB (except the last one).
MIN_PART_SIZE = 5 * 1024 * 1024
DEFAULT_PART_SIZE = 8 * 1024 * 1024

_CREDENTIAL_CODES = frozenset({
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken",
    "InvalidToken", "TokenRefreshRequired", "AuthorizationHeaderMalformed", "InvalidClientTokenId",
})
_TRANSIENT_CODES = frozenset({
    "SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling",
    "ThrottlingException", "RequestTimeTooSkewed",
})
_NETWORK_ERRORS = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.IncompleteReadError,
    ConnectionError,
)


class _S3Upload:
    """A streamed upload: one PUT at ``complete`` if the data fits in a part, else a
    multipart upload whose parts go up as they fill and which completes (becomes
    visible) only in :meth:`complete`. Holds at most one part in memory."""

    def __init__(self, bucket: S3Bucket, key: str, chunks: Iterator[bytes], hasher: Any) -> None:
        self._bucket, self._key = bucket, key
        self._upload_id: str | None = None
        self._parts: list[dict] = []
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
                    self._send_part(part)
                    del part
        except BaseException:
            self.abort()
            raise
        self._tail = bytes(buffer)
        self.digest = hasher_digest(hasher)

    def _send_part(self, data: bytes) -> None:
        bucket, full_key = self._bucket, self._bucket.full_key(self._key)
        if self._upload_id is None:
            created = bucket.call(f"start multipart upload of {self._key}", "create_multipart_upload",
                                  Bucket=bucket.name, Key=full_key)
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        response = bucket.call(f"upload part {number} of {self._key}", "upload_part", Bucket=bucket.name,
                               Key=full_key, UploadId=self._upload_id, PartNumber=number, Body=data)
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})

    def complete(self) -> None:
        bucket = self._bucket
        try:
            if self._upload_id is None:
                bucket.put(self._key, self._tail)
                return
            if self._tail:
                self._send_part(self._tail)
            bucket.call(f"complete multipart upload of {self._key}", "complete_multipart_upload",
                        Bucket=bucket.name, Key=bucket.full_key(self._key), UploadId=self._upload_id,
                        MultipartUpload={"Parts": self._parts})
            self._upload_id = None
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is None:
            return
        try:
            self._bucket.call(f"abort multipart upload of {self._key}", "abort_multipart_upload",
                              Bucket=self._bucket.name, Key=self._bucket.full_key(self._key), UploadId=upload_id)
        except ObjectStoreError:
            pass  # an unfinished upload is invisible; a lifecycle rule removes what is left


class S3Bucket:
    """The :class:`~simulator.snapshots._bucket.Bucket` operations over one boto3 client."""

    def __init__(self, client: Any, name: str, prefix: str, *, part_size: int, retry: RetryPolicy) -> None:
        self._client = client
        self.name = name
        self.prefix = normalize_prefix(prefix)
        self.part_size = check_part_size(part_size, MIN_PART_SIZE)
        self.retry = retry
        self.url = object_url("s3", name, self.prefix)

    def __repr__(self) -> str:
        return f"<S3Bucket {self.url!r}>"

    def full_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def call(self, what: str, operation: str, **arguments) -> Any:
        """One client call with retries; client errors become the store's errors."""
        method = getattr(self._client, operation)

        def attempt():
            try:
                return method(**arguments)
            except botocore.exceptions.ClientError as error:
                raise self._translate(what, error) from None
            except _NETWORK_ERRORS as error:
                raise Transient(f"{type(error).__name__}: {error}") from None
            except botocore.exceptions.NoCredentialsError:
                raise CredentialsError(
                    f"{what} in {self.url}: no AWS credentials found; expected arguments, "
                    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, or an instance role"
                ) from None

        return self.retry.run(f"{what} in {self.url}", attempt)

    def _translate(self, what: str, error: Any) -> Exception:
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _TRANSIENT_CODES or status >= 500 or status == 429:
            return Transient(f"{code or status}")
        where = f"{what} in {self.url}"
        if code == "NoSuchBucket":
            return BucketNotFoundError(f"{where}: bucket {self.name!r} does not exist; an existing bucket expected")
        if code in _CREDENTIAL_CODES or status in (401, 403):
            return CredentialsError(f"{where}: the credentials were refused ({code or status}); "
                                    "credentials allowed to use this bucket expected")
        if code in ("NoSuchKey", "404", "NotFound") or status == 404:
            return ObjectNotFoundError(f"{where}: no such object")
        if code == "PreconditionFailed" or status == 412:
            return ObjectStoreError(f"{where}: the object already exists; a new key expected")
        return ObjectStoreError(f"{where}: S3 error {code or status}")

    # -- Bucket --------------------------------------------------------------------

    def check(self) -> None:
        """Fail now, clearly, if the bucket is missing or the credentials refused."""
        try:
            self.call("open", "head_bucket", Bucket=self.name)
        except ObjectNotFoundError:
            raise BucketNotFoundError(
                f"open {self.url}: bucket {self.name!r} does not exist; an existing bucket expected"
            ) from None

    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> None:
        extra = {"IfNoneMatch": "*"} if if_absent else {}
        self.call(f"put {key}", "put_object", Bucket=self.name, Key=self.full_key(key), Body=data, **extra)

    def get(self, key: str) -> bytes:
        def read():
            return self._read_body(self._client.get_object(Bucket=self.name, Key=self.full_key(key)))

        return self._retried(f"get {key}", read)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        if length <= 0:
            return b""
        byte_range = f"bytes={start}-{start + length - 1}"

        def read():
            try:
                response = self._client.get_object(Bucket=self.name, Key=self.full_key(key), Range=byte_range)
            except botocore.exceptions.ClientError as error:
                if error.response.get("Error", {}).get("Code") == "InvalidRange":
                    return b""  # past the end of the object
                raise
            return self._read_body(response)

        return self._retried(f"get {byte_range} of {key}", read)

    def _read_body(self, response: dict) -> bytes:
        body = response["Body"]
        try:
            return body.read()
        finally:
            body.close()

    def _retried(self, what: str, read: Callable[[], bytes]) -> bytes:
        # A GET whose body breaks off mid-way is retried whole (the read is one call).
        def attempt():
            try:
                return read()
            except botocore.exceptions.ClientError as error:
                raise self._translate(what, error) from None
            except _NETWORK_ERRORS as error:
                raise Transient(f"{type(error).__name__}: {error}") from None

        return self.retry.run(f"{what} in {self.url}", attempt)

    def size(self, key: str) -> int | None:
        try:
            response = self.call(f"head {key}", "head_object", Bucket=self.name, Key=self.full_key(key))
        except ObjectNotFoundError:
            return None
        return int(response["ContentLength"])

    def list(self, prefix: str = "") -> list[tuple[str, int]]:
        base = self.full_key("")
        found, token = [], None
        while True:
            arguments = {"Bucket": self.name, "Prefix": base + prefix}
            if token:
                arguments["ContinuationToken"] = token
            page = self.call(f"list {prefix or '/'}", "list_objects_v2", **arguments)
            found.extend((item["Key"][len(base):], int(item["Size"])) for item in page.get("Contents", ()))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return sorted(found)

    def delete(self, key: str) -> None:
        try:
            self.call(f"delete {key}", "delete_object", Bucket=self.name, Key=self.full_key(key))
        except ObjectNotFoundError:
            pass

    def upload(self, key: str, chunks: Iterator[bytes], *, hasher: Any) -> _S3Upload:
        return _S3Upload(self, key, chunks, hasher)


def s3_client(*, endpoint_url: str | None = None, region: str | None = None, profile: str | None = None,
              access_key_id: str | None = None, secret_access_key: str | None = None,
              session_token: str | None = None, timeout: float = 30.0) -> Any:
    """A boto3 S3 client from the standard credential chain, with its own retries off."""
    session = boto3.session.Session(
        aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key,
        aws_session_token=session_token, profile_name=profile, region_name=region,
    )
    config = botocore.config.Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=timeout, read_timeout=timeout,
        # Checksums on every request are new (2025) and not every S3-compatible server knows them.
        request_checksum_calculation="when_required", response_checksum_validation="when_required",
    )
    return session.client("s3", endpoint_url=endpoint_url, config=config,
                          region_name=region or session.region_name or "us-east-1")


class S3SnapshotStore(ObjectSnapshotStore):
    """A :class:`~simulator.snapshots.SnapshotStore` in ``s3://bucket/prefix``.

    Credentials and endpoint come from the arguments when given, else from
    boto3's standard chain (environment, ``profile`` / ``AWS_PROFILE``, config
    files, instance role). The bucket must exist; opening checks it and
    recovers what the prefix holds (see :mod:`._object_store`). ``part_size``
    (>= 5 MiB) is the multipart part size and the most a save or commit holds
    in memory; ``retry`` bounds retries of transient failures. Secrets are
    kept only inside the boto3 session: never in ``repr``, errors or
    locations. Use it when snapshots must outlive the nodes' machines, or
    must be shared with followers that pull them (``Streaming(pull=...)``).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
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
            client = s3_client(endpoint_url=endpoint_url, region=region, profile=profile,
                               access_key_id=access_key_id, secret_access_key=secret_access_key,
                               session_token=session_token, timeout=timeout)
        s3_bucket = S3Bucket(client, bucket, prefix, part_size=part_size, retry=retry)
        s3_bucket.check()
        self.endpoint_url = endpoint_url
        super().__init__(s3_bucket, chunk_size=chunk_size, clock=clock)

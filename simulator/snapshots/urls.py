"""Opening a cloud snapshot store from a URL: ``s3://bucket/prefix`` or ``gs://bucket/prefix``.

What the command line's ``--store s3://...`` and ``Streaming.in_bucket`` use.
Credentials and endpoints are never part of the URL: they come from each
cloud's standard mechanisms (for S3 ``AWS_ACCESS_KEY_ID`` and friends,
profiles, ``AWS_ENDPOINT_URL_S3`` for a compatible server; for GCS
Application Default Credentials, ``STORAGE_EMULATOR_HOST`` for an
emulator), or from keyword options passed through to the store.
"""

from __future__ import annotations

import re
from typing import Any

from ._bucket import normalize_prefix

SCHEMES = ("s3", "gs")
# What both clouds accept as a bucket name (S3 is the stricter: no underscores).
_BUCKET_NAMES = {
    "s3": re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"),
    "gs": re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$"),
}


def parse_store_url(url: object) -> tuple[str, str, str]:
    """``(scheme, bucket, prefix)`` of ``s3://bucket/prefix`` or ``gs://bucket/prefix``."""
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(f"store URL must look like s3://bucket/prefix or gs://bucket/prefix, got {url!r}")
    scheme, _, rest = url.partition("://")
    if scheme not in SCHEMES:
        raise ValueError(f"store URL scheme must be s3 or gs, got {scheme!r} in {url!r}")
    bucket, _, prefix = rest.partition("/")
    if "@" in bucket:
        # Never echo the URL: what precedes the @ may be a password.
        raise ValueError(f"store URL must not carry credentials ({scheme}://USER:***@...); give them in the "
                         f"environment (see the cloud's standard variables) or as store options")
    if not bucket:
        raise ValueError(f"store URL names no bucket: {url!r}; {scheme}://bucket/prefix expected")
    if not _BUCKET_NAMES[scheme].match(bucket):
        raise ValueError(f"store URL bucket {bucket!r} is not a valid bucket name; expected 3-63 lowercase "
                         f"letters, digits, dots or hyphens, starting and ending with a letter or digit")
    return scheme, bucket, normalize_prefix(prefix)


def is_store_url(value: object) -> bool:
    return isinstance(value, str) and value.startswith(tuple(f"{scheme}://" for scheme in SCHEMES))


def open_store(url: str, **options: Any):
    """An ``S3SnapshotStore`` or ``GCSSnapshotStore`` for ``url``; ``options`` go to its constructor."""
    scheme, bucket, prefix = parse_store_url(url)
    if scheme == "s3":
        from .s3 import S3SnapshotStore

        return S3SnapshotStore(bucket, prefix, **options)
    from .gcs import GCSSnapshotStore

    return GCSSnapshotStore(bucket, prefix, **options)


_CLIENT_OPTIONS = {
    "s3": ("endpoint_url", "region", "profile", "access_key_id", "secret_access_key", "session_token", "timeout"),
    "gs": ("project", "credentials", "endpoint", "anonymous"),
}


def with_shared_client(url: str, **options: Any) -> dict[str, Any]:
    """``options`` for :func:`open_store` with one client made from them, to share
    between many stores of the same cloud (making a client costs a fraction of a second)."""
    if "client" in options:
        return options
    scheme = parse_store_url(url)[0]
    client_options = {key: options.pop(key) for key in _CLIENT_OPTIONS[scheme] if key in options}
    if scheme == "s3":
        from .s3 import s3_client

        options["client"] = s3_client(**client_options)
    else:
        from .gcs import gcs_client

        options["client"] = gcs_client(**client_options)
    return options


def objects_under(url: str, **options: Any) -> list[str]:
    """Every object key under the URL's prefix (the store's own or not), sorted."""
    store = open_store(url, **options)
    return [key for key, _ in store.bucket.list()]


def join(url: str, *parts: str) -> str:
    """``url`` with more path segments: ``join("s3://b/p", "node-1") == "s3://b/p/node-1"``."""
    return "/".join([url.rstrip("/"), *(part.strip("/") for part in parts)])

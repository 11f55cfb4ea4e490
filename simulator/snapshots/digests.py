"""Whole-snapshot digests, versioned by name: what a complete snapshot is identified and verified by.

A digest is written ``<algorithm>:<64 lowercase hex digits>``. The name in
front travels with the digest everywhere the digest goes (Raft's
``SnapshotMetadata``, a store's metadata JSON, a streaming offer, the gRPC
``digest`` string), so a receiver verifies a snapshot in the algorithm its
sender used, and names an algorithm it does not know instead of calling good
data corrupt.

========= ======================= =============================================
algorithm library                 why
========= ======================= =============================================
sha256    ``hashlib``             the first format; still verified when received
blake3    ``blake3``              current default: 0.23x the CPU seconds of
                                  sha256 per GiB in the same run
                                  (``benchmarks/checksums.py``), with the same
                                  32-byte, collision-resistant output
========= ======================= =============================================

The Raft core (layer 0) may use the standard library only, so it does not
choose: storages are handed :data:`SNAPSHOT_DIGESTS` by the layer that builds
them, and the core only carries the digest string. ``blake3`` is a dependency
of raftsim; should it still be missing (a partial install), new snapshots
fall back to sha256 and :data:`FALLBACK_NOTE` says so once, as a warning:
everything still works, but snapshot ids (and so traces) differ from the
golden ones.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Callable
from typing import Any

try:
    import blake3 as _blake3
except ImportError:  # pragma: no cover - blake3 is a dependency; this is the partial-install path
    _blake3 = None


class UnknownDigestError(ValueError):
    """A digest names an algorithm this version of raftsim does not verify."""


#: Algorithms this version verifies: name -> constructor of a running hash.
HASHERS: dict[str, Callable[[], Any]] = {"sha256": hashlib.sha256}
if _blake3 is not None:
    HASHERS["blake3"] = _blake3.blake3

#: Algorithm new snapshots are digested with.
DEFAULT_ALGORITHM = "blake3" if _blake3 is not None else "sha256"
FALLBACK_NOTE = (
    "" if _blake3 is not None else
    "raftsim: the 'blake3' package is not installed, so new snapshots are digested with sha256 "
    "(slower, and snapshot ids differ from the golden traces); pip install blake3 to use BLAKE3"
)
if FALLBACK_NOTE:  # pragma: no cover - see above
    warnings.warn(FALLBACK_NOTE, RuntimeWarning, stacklevel=2)

_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


def _known() -> str:
    return ", ".join(sorted(HASHERS))


def algorithm_of(digest: str) -> str:
    """The algorithm ``digest`` names; ``UnknownDigestError`` naming it if this version has none such."""
    name, colon, _ = digest.partition(":") if isinstance(digest, str) else ("", "", "")
    if not colon:
        raise UnknownDigestError(f"digest must be '<algorithm>:<hex>' ({_known()}), got {digest!r}")
    if name not in HASHERS:
        raise UnknownDigestError(
            f"digest algorithm {name!r} is not one this version verifies (known: {_known()}); "
            f"got {digest[:80]!r}"
        )
    return name


def new_hasher(algorithm: str | None = None) -> Any:
    """A running hash in ``algorithm`` (default: :data:`DEFAULT_ALGORITHM`); :func:`hasher_digest` formats it."""
    name = DEFAULT_ALGORITHM if algorithm is None else algorithm
    try:
        return HASHERS[name]()
    except KeyError:
        raise UnknownDigestError(
            f"digest algorithm {name!r} is not one this version verifies (known: {_known()})"
        ) from None


def hasher_for(digest: str) -> Any:
    """A running hash in the algorithm ``digest`` names (to verify bytes against it)."""
    return new_hasher(algorithm_of(digest))


def hasher_digest(hasher: Any) -> str:
    """``<algorithm>:<hex>`` of a hasher from :func:`new_hasher` (both libraries name their hashers)."""
    return f"{hasher.name}:{hasher.hexdigest()}"


def digest_of(data: bytes | bytearray | memoryview, *, like: str = "") -> str:
    """The digest of ``data``: in the algorithm ``like`` names, or the default one when ``like`` is empty."""
    hasher = hasher_for(like) if like else new_hasher()
    hasher.update(data)
    return hasher_digest(hasher)


def check_digest(value: object, name: str = "digest") -> str:
    """``value`` if it is a digest this version verifies, else ``ValueError`` naming what was wrong."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be '<algorithm>:' followed by 64 lowercase hex digits, got {value!r}")
    algorithm = algorithm_of(value)
    if not _HEX_DIGEST.fullmatch(value[len(algorithm) + 1:]):
        raise ValueError(
            f"{name} must be '{algorithm}:' followed by 64 lowercase hex digits, got {value!r}"
        )
    return value


class SnapshotDigests:
    """What a Raft storage (``MemStorageWithSnapshot(digests=...)``) digests snapshot data with.

    The core's own default knows sha256 only (it may not import ``blake3``);
    the cluster hands storages this one, which knows every algorithm above.
    """

    default = DEFAULT_ALGORITHM

    def digest_of(self, data: bytes | bytearray | memoryview, *, like: str = "") -> str:
        return digest_of(data, like=like)

    def __repr__(self) -> str:
        return f"<SnapshotDigests default={self.default} known={_known()}>"


SNAPSHOT_DIGESTS = SnapshotDigests()

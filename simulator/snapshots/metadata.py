"""What a store knows about each snapshot, and how that is written down.

:class:`StoredSnapshot` describes a complete snapshot, :class:`PartialSnapshot`
one being received. Both are small frozen values, the same for every store.
The disk store keeps them as JSON (never pickle: a metadata file is data from
disk, not code); :func:`snapshot_from_json` and :func:`partial_from_json`
check every field and raise :class:`MetadataError` naming the field, what it
should be and what was found, which the disk store turns into a ``problems``
entry instead of trusting the file.
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs

from .digests import (  # re-exported: the stores take them from here
    DEFAULT_ALGORITHM,
    algorithm_of,
    check_digest,
    digest_of,
    hasher_digest,
    hasher_for,
    new_hasher,
)

#: Membership recorded with a snapshot: ``(voters, learners)``, each a tuple of node ids.
ConfStateTuple = tuple[tuple[int, ...], tuple[int, ...]]

SNAPSHOT_FORMAT = "raftsim-snapshot"
PARTIAL_FORMAT = "raftsim-partial-snapshot"
FORMAT_VERSION = 1


class MetadataError(ValueError):
    """A metadata or progress record that is not what this version writes."""


# ------------------------------------------------------------------ digests
# Which algorithm and how a digest is written: see ``digests.py``.


def default_snapshot_id(index: int, term: int, digest: str) -> str:
    """The id ``save_snapshot`` gives a snapshot when none is passed.

    Derived from the content, never from a clock or a counter, so the same
    snapshot made twice (by two leaders, or in two runs) gets the same id and a
    transfer of it can be resumed; same form as ``MemStorageWithSnapshot`` uses.
    """
    return f"{term}-{index}-{digest.partition(':')[2][:12]}"


# --------------------------------------------------------------- validation


def is_count(value: object) -> bool:
    """Whether ``value`` is a non-negative ``int`` (not a ``bool``): an index, term, size or offset."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_count(value: object, name: str) -> int:
    """``value`` as a non-negative ``int`` (not a ``bool``), or ``ValueError`` naming ``name``."""
    if not is_count(value):
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return value


def check_snapshot_id(value: object) -> str:
    if not isinstance(value, str) or not value or not value.isprintable():
        raise ValueError(f"snapshot_id must be a non-empty printable string, got {value!r}")
    return value


def conf_state_tuple(value: object) -> ConfStateTuple | None:
    """Normalize a membership to ``(voters, learners)`` tuples, or ``None``.

    Accepts a pair of iterables of node ids, or any object with ``voters`` and
    ``learners`` attributes (such as the core's ``ConfState``), so that callers
    in higher layers can pass what they hold without this layer importing it.
    """
    if value is None:
        return None
    if hasattr(value, "voters") and hasattr(value, "learners"):
        pair = (value.voters, value.learners)
    else:
        try:
            pair = tuple(value)  # type: ignore[call-overload]
        except TypeError:
            pair = ()
        if len(pair) != 2:
            raise ValueError(f"conf_state must be None or a pair (voters, learners), got {value!r}")
    result = []
    for name, members in zip(("voters", "learners"), pair):
        try:
            ids = tuple(members)
        except TypeError:
            raise ValueError(f"conf_state {name} must be an iterable of node ids, got {members!r}") from None
        for node_id in ids:
            if isinstance(node_id, bool) or not isinstance(node_id, int) or node_id < 0:
                raise ValueError(f"conf_state {name} must hold integer node ids >= 0, got {node_id!r}")
        result.append(ids)
    return (result[0], result[1])


# ------------------------------------------------------------------ values


@attrs.frozen(kw_only=True)
class StoredSnapshot:
    """A complete snapshot held by a store: what it is, and where its bytes are.

    ``created_at`` comes from the store's injected ``clock`` (virtual time in the
    simulator), ``location`` is a path for the disk store and a
    ``memory://`` name for the memory store.
    """

    index: int
    term: int
    size: int
    digest: str
    snapshot_id: str
    conf_state: ConfStateTuple | None
    created_at: float
    location: str


@attrs.frozen(kw_only=True)
class PartialSnapshot:
    """A snapshot being received: ``offset`` bytes of ``size`` are durably written and
    verified, and the transfer resumes from there (``open_writer`` with the same
    index, term, size, digest and snapshot id)."""

    index: int
    term: int
    size: int
    digest: str
    snapshot_id: str
    conf_state: ConfStateTuple | None
    offset: int
    location: str

    def same_snapshot(self, *, index: int, term: int, size: int, digest: str, snapshot_id: str) -> bool:
        """Whether a writer opened with these values continues this transfer.

        Membership is not compared: a new leader resending the same snapshot may
        attach the membership it has applied since (it is committed, so safe).
        """
        return (self.index, self.term, self.size, self.digest, self.snapshot_id) == (
            index,
            term,
            size,
            digest,
            snapshot_id,
        )


# --------------------------------------------------------------------- JSON


def _conf_state_to_json(conf_state: ConfStateTuple | None) -> dict[str, list[int]] | None:
    if conf_state is None:
        return None
    return {"voters": list(conf_state[0]), "learners": list(conf_state[1])}


def snapshot_to_json(snapshot: StoredSnapshot) -> bytes:
    record = {
        "format": SNAPSHOT_FORMAT,
        "version": FORMAT_VERSION,
        "index": snapshot.index,
        "term": snapshot.term,
        "timestamp": snapshot.created_at,
        "size": snapshot.size,
        "digest": snapshot.digest,
        "snapshot_id": snapshot.snapshot_id,
        "conf_state": _conf_state_to_json(snapshot.conf_state),
    }
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8")


def partial_to_json(partial: PartialSnapshot, *, prefix_digest: str) -> bytes:
    """The progress record of a transfer: its identity, ``offset`` and the digest of
    the first ``offset`` bytes, which recovery re-hashes the partial file against."""
    record = {
        "format": PARTIAL_FORMAT,
        "version": FORMAT_VERSION,
        "index": partial.index,
        "term": partial.term,
        "size": partial.size,
        "digest": partial.digest,
        "snapshot_id": partial.snapshot_id,
        "conf_state": _conf_state_to_json(partial.conf_state),
        "offset": partial.offset,
        "prefix_digest": prefix_digest,
    }
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8")


class _Fields:
    """Reads fields of a decoded JSON object, failing with the field's name."""

    def __init__(self, raw: bytes, what: str, expected_format: str) -> None:
        try:
            record = json.loads(raw.decode("utf-8"))
        except ValueError as error:  # bad UTF-8, bad JSON, an integer too long to convert
            raise MetadataError(f"{what} is not valid UTF-8 JSON ({error})") from None
        except RecursionError:
            raise MetadataError(f"{what} nests JSON too deeply to parse; a flat record expected") from None
        if not isinstance(record, dict):
            raise MetadataError(f"{what} must hold a JSON object, found {type(record).__name__}")
        self._record = record
        self._what = what
        found_format = record.get("format")
        if found_format != expected_format:
            raise MetadataError(f"{what}: format {expected_format!r} expected, found {found_format!r}")
        version = record.get("version")
        if version != FORMAT_VERSION:
            raise MetadataError(f"{what}: version {FORMAT_VERSION} expected, found {version!r}")

    def get(self, name: str, check) -> Any:
        if name not in self._record:
            raise MetadataError(f"{self._what}: field {name!r} is missing")
        try:
            return check(self._record[name])
        except (ValueError, TypeError) as error:
            raise MetadataError(f"{self._what}: field {name!r}: {error}") from None

    def conf_state(self) -> ConfStateTuple | None:
        def check(value: object) -> ConfStateTuple | None:
            if value is None:
                return None
            if not isinstance(value, dict) or set(value) != {"voters", "learners"}:
                raise ValueError(f"null or an object with 'voters' and 'learners' expected, got {value!r}")
            if not all(isinstance(value[key], list) for key in ("voters", "learners")):
                raise ValueError(f"'voters' and 'learners' must be lists, got {value!r}")
            return conf_state_tuple((value["voters"], value["learners"]))

        return self.get("conf_state", check)


def _timestamp(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"a number expected, got {value!r}")
    return float(value)


def snapshot_from_json(raw: bytes, *, what: str, location: str) -> StoredSnapshot:
    """Parse a metadata file written by :func:`snapshot_to_json`; ``what`` names it in errors."""
    fields = _Fields(raw, what, SNAPSHOT_FORMAT)
    return StoredSnapshot(
        index=fields.get("index", lambda v: check_count(v, "index")),
        term=fields.get("term", lambda v: check_count(v, "term")),
        size=fields.get("size", lambda v: check_count(v, "size")),
        digest=fields.get("digest", check_digest),
        snapshot_id=fields.get("snapshot_id", check_snapshot_id),
        conf_state=fields.conf_state(),
        created_at=fields.get("timestamp", _timestamp),
        location=location,
    )


def partial_from_json(raw: bytes, *, what: str, location: str) -> tuple[PartialSnapshot, str]:
    """Parse a progress record; returns the partial and the digest of its first ``offset`` bytes."""
    fields = _Fields(raw, what, PARTIAL_FORMAT)
    partial = PartialSnapshot(
        index=fields.get("index", lambda v: check_count(v, "index")),
        term=fields.get("term", lambda v: check_count(v, "term")),
        size=fields.get("size", lambda v: check_count(v, "size")),
        digest=fields.get("digest", check_digest),
        snapshot_id=fields.get("snapshot_id", check_snapshot_id),
        conf_state=fields.conf_state(),
        offset=fields.get("offset", lambda v: check_count(v, "offset")),
        location=location,
    )
    if partial.offset > partial.size:
        raise MetadataError(f"{what}: offset {partial.offset} is past the size {partial.size}")
    prefix_digest = fields.get("prefix_digest", lambda v: check_digest(v, "prefix_digest"))
    return partial, prefix_digest

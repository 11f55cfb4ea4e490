"""``check_snapshot_store``: the conformance kit for a :class:`~simulator.SnapshotStore`.

raftsim's own stores (memory, disk, S3, GCS) pass it in ``tests/test_store_contract.py``;
run it on yours::

    from simulator.testing import check_snapshot_store

    def test_my_store_follows_the_contract(tmp_path):
        places = iter(range(1000))
        check_snapshot_store(lambda chunk_size: MyStore(tmp_path / str(next(places)), chunk_size=chunk_size))

``factory(chunk_size)`` must return a new, *empty* store each call. Restarts
are what the store itself declares through ``reopened()`` (the protocol's
recovery rule): every check that says "after a restart" calls it. Each rule
broken raises :class:`~simulator.testing.ContractViolation` naming it.

The rules (``simulator.snapshots.protocol`` documents each method):

- save (bytes or a generator of chunks), then metadata, stream (from any
  offset, in chunks of ``chunk_size``), read; the default snapshot id is
  ``f"{term}-{index}-{digest hex[:12]}"``; all of it survives a restart;
- offsets outside the snapshot and unknown indexes are refused at the call;
  a source that fails mid-save leaves nothing behind;
- the same snapshot saved again is a no-op, a different one is refused;
- listing, ``latest``, and compaction that always keeps the newest;
- a writer refuses gaps, overlaps and extra bytes, commits only when
  complete, resumes after a restart from its recorded offset, publishes
  nothing on a bad digest, is superseded by another writer, and ``abort``
  removes its data; empty snapshots work both ways.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..snapshots import (
    ResumableWriter,
    SnapshotChunkError,
    SnapshotDigestError,
    SnapshotExistsError,
    SnapshotNotFoundError,
    SnapshotStore,
    SnapshotStoreError,
    digest_of,
)
from .machine_kit import ContractViolation

StoreFactory = Callable[[int], SnapshotStore]


def _violation(rule: str, detail: str) -> ContractViolation:
    return ContractViolation(f"SnapshotStore contract, {rule}: {detail}")


def _expect(condition: bool, rule: str, detail: str) -> None:
    if not condition:
        raise _violation(rule, detail)


def _raises(rule: str, error_type: type[BaseException], pattern: str, call: Callable[[], object]) -> None:
    try:
        call()
    except error_type as error:
        if not re.search(pattern, str(error)):
            raise _violation(rule, f"{error_type.__name__} expected to say /{pattern}/, it said {str(error)!r}") from None
        return
    except Exception as error:  # noqa: BLE001 - report what came instead
        raise _violation(rule, f"{error_type.__name__} expected, got {type(error).__name__}: {error}") from None
    raise _violation(rule, f"{error_type.__name__} expected, nothing was raised")


def _writer(store: SnapshotStore, index: int, data: bytes, *, snapshot_id: str = "snap", conf_state=None):
    writer = store.open_writer(index, term=1, size=len(data), digest=digest_of(data),
                               snapshot_id=snapshot_id, conf_state=conf_state)
    _expect(isinstance(writer, ResumableWriter), "open_writer returns a ResumableWriter",
            f"{type(writer).__name__} lacks some of its members")
    return writer


def _save_and_read(new: StoreFactory) -> None:
    rule = "saved snapshots read back"
    store = new(4)
    store.save_snapshot(7, b"hello world", term=3, conf_state=((1, 2, 3), (4,)))
    meta = store.snapshot_metadata(7)
    _expect((meta.index, meta.term, meta.size, meta.digest) == (7, 3, 11, digest_of(b"hello world")), rule,
            f"metadata {meta!r}")
    _expect(meta.conf_state == ((1, 2, 3), (4,)), rule, f"conf_state {meta.conf_state!r}")
    _expect(meta.snapshot_id == f"3-7-{meta.digest[7:19]}", "the default snapshot id",
            f"'3-7-{meta.digest[7:19]}' expected, got {meta.snapshot_id!r}")
    _expect(store.read_snapshot(7) == b"hello world", rule, "read_snapshot returned other bytes")
    _expect(list(store.stream_snapshot(7)) == [b"hell", b"o wo", b"rld"], "streams come in chunk_size chunks",
            f"got {list(store.stream_snapshot(7))!r}")
    _expect(list(store.stream_snapshot(7, 5)) == [b" wor", b"ld"], "streams start at the offset",
            f"got {list(store.stream_snapshot(7, 5))!r}")
    _expect(list(store.stream_snapshot(7, 11)) == [], "a stream from the end is empty", "it yielded chunks")
    again = store.reopened()
    _expect(again.has_snapshot(7), "snapshots survive a restart", "snapshot 7 is gone after reopened()")
    _expect(again.snapshot_metadata(7) == meta, "snapshots survive a restart",
            f"metadata {meta!r} expected, got {again.snapshot_metadata(7)!r}")
    _expect(list(again.stream_snapshot(7, 9)) == [b"ld"], "snapshots survive a restart", "other bytes after reopening")


def _refusals(new: StoreFactory) -> None:
    store = new(4)
    store.save_snapshot(1, b"hello world", term=1)
    for offset in (-1, 12, True):
        _raises("a stream offset outside the snapshot is refused at the call", ValueError, r"range 0\.\.11",
                lambda offset=offset: store.stream_snapshot(1, offset))
    empty = new(4)
    _raises("an unknown index names the available ones", SnapshotNotFoundError, "available: none",
            lambda: empty.snapshot_metadata(5))
    store.save_snapshot(9, b"b", term=1)
    for call in (store.snapshot_metadata, store.stream_snapshot, store.read_snapshot):
        _raises("an unknown index names the available ones", SnapshotNotFoundError,
                r"no complete snapshot at index 5; available: \[1, 9\]", lambda call=call: call(5))


def _generators_and_failing_sources(new: StoreFactory) -> None:
    store = new(4)
    store.save_snapshot(1, (piece for piece in [b"ab", b"", bytearray(b"cd"), memoryview(b"e")]), term=1)
    _expect(store.read_snapshot(1) == b"abcde", "save_snapshot takes a generator of chunks",
            f"got {store.read_snapshot(1)!r}")

    def broken():
        yield b"abc"
        raise OSError("source failed")

    _raises("a failing source is the caller's error", OSError, "source failed",
            lambda: store.save_snapshot(2, broken(), term=1))
    indexes = [s.index for s in store.reopened().list_snapshots()]
    _expect(indexes == [1], "a failed save leaves nothing behind", f"snapshots {indexes} after a restart")


def _same_and_different(new: StoreFactory) -> None:
    store = new(4)
    location = store.save_snapshot(4, b"data", term=2)
    _expect(store.save_snapshot(4, [b"da", b"ta"], term=2) == location, "saving the same snapshot again is a no-op",
            "another location was returned")
    _raises("a different snapshot at an index is refused", SnapshotExistsError, "already exists",
            lambda: store.save_snapshot(4, b"other", term=2))
    _expect(store.reopened().read_snapshot(4) == b"data", "a refused save changes nothing", "the data changed")


def _listing_and_compaction(new: StoreFactory) -> None:
    store = new(4)
    _expect((store.list_snapshots(), store.latest()) == ([], None), "a new store is empty",
            f"it lists {store.list_snapshots()!r}")
    for index in (5, 2, 9, 7):
        store.save_snapshot(index, bytes([index]) * index, term=1)
    indexes = [s.index for s in store.list_snapshots()]
    _expect(indexes == [2, 5, 7, 9], "list_snapshots is oldest first", f"got {indexes}")
    _expect(store.latest().index == 9, "latest is the highest index", f"got {store.latest().index}")
    _raises("compaction keeps at least one", ValueError, "keep_count must be an integer >= 1",
            lambda: store.compact_snapshots(0))
    _expect(store.compact_snapshots(2) == [2, 5], "compaction deletes the oldest, ascending", "other indexes deleted")
    _expect(store.compact_snapshots(5) == [], "compaction with room to spare deletes nothing", "it deleted some")
    again = store.reopened()
    _expect([s.index for s in again.list_snapshots()] == [7, 9], "compaction survives a restart",
            f"got {[s.index for s in again.list_snapshots()]}")
    _expect(again.read_snapshot(7) == bytes([7]) * 7, "compaction keeps the data it keeps", "snapshot 7 changed")


def _writer_rules(new: StoreFactory) -> None:
    store = new(3)
    data = b"0123456789"
    writer = _writer(store, 4, data, conf_state=((1,), ()))
    _expect(writer.write(0, data[:4]) == 4, "write returns the new offset", "it returned something else")
    for offset, chunk, message in [(6, b"67", "gap of 2 bytes"), (2, b"23", "overlaps 2 bytes"),
                                   (4, b"456789X", "more bytes than total_size 10")]:
        _raises("a writer refuses gaps, overlaps and extra bytes", SnapshotChunkError, message,
                lambda offset=offset, chunk=chunk: writer.write(offset, chunk))
    _raises("commit waits for every byte", SnapshotChunkError, "commit after 4 of 10 bytes", writer.commit)
    _expect([p.offset for p in store.partial_transfers()] == [4], "partial transfers report their offset",
            f"got {store.partial_transfers()!r}")
    _expect(not store.has_snapshot(4), "a partial snapshot is not a snapshot", "has_snapshot(4) is true")
    writer.write(4, data[4:])
    snapshot = writer.commit()
    _expect((snapshot.index, snapshot.size, snapshot.conf_state) == (4, 10, ((1,), ())), "commit publishes",
            f"got {snapshot!r}")
    _expect(store.partial_transfers() == [], "commit ends the transfer", "a partial transfer remains")
    _expect(store.reopened().read_snapshot(4) == data, "committed snapshots survive a restart", "other bytes")


def _resume_after_restart(new: StoreFactory) -> None:
    store = new(4)
    data = b"resumable snapshot"
    writer = _writer(store, 3, data)
    writer.write(0, data[:5])
    writer.write(5, data[5:9])
    store = store.reopened()
    partials = [(p.index, p.offset, p.size) for p in store.partial_transfers()]
    _expect(partials == [(3, 9, len(data))], "a partial transfer survives a restart at its offset",
            f"got {partials}")
    writer = _writer(store, 3, data)
    _expect(writer.resumed_from == 9, "a writer for the same snapshot resumes", f"resumed_from {writer.resumed_from}")
    writer.write(9, data[9:])
    writer.commit()
    _expect(store.reopened().read_snapshot(3) == data, "a resumed snapshot is whole", "other bytes")


def _bad_digest(new: StoreFactory) -> None:
    store = new(4)
    writer = store.open_writer(2, term=1, size=4, digest=digest_of(b"good"), snapshot_id="s")
    writer.write(0, b"evil")
    _raises("a bad digest publishes nothing", SnapshotDigestError, "partial data was removed", writer.commit)
    again = store.reopened()
    _expect((again.list_snapshots(), again.partial_transfers()) == ([], []),
            "a bad digest leaves nothing behind", "a snapshot or partial remains after a restart")


def _supersede_and_abort(new: StoreFactory) -> None:
    store = new(4)
    first = _writer(store, 3, b"first", snapshot_id="a")
    first.write(0, b"fir")
    second = _writer(store, 5, b"second", snapshot_id="b")
    _raises("a newer writer supersedes the old one", SnapshotStoreError, "superseded",
            lambda: first.write(3, b"st"))
    _expect([p.index for p in store.partial_transfers()] == [5], "one transfer at a time",
            f"partials {store.partial_transfers()!r}")
    second.write(0, b"sec")
    second.abort()
    again = store.reopened()
    _expect((again.partial_transfers(), again.list_snapshots()) == ([], []), "abort removes the partial data",
            "something remains after a restart")


def _empty_snapshots(new: StoreFactory) -> None:
    store = new(4)
    store.save_snapshot(1, b"", term=1)
    _expect((store.read_snapshot(1), list(store.stream_snapshot(1))) == (b"", []), "an empty snapshot reads empty",
            "it read bytes")
    _expect(_writer(store, 2, b"").commit().size == 0, "an empty snapshot can be received", "size is not 0")
    _expect(store.reopened().read_snapshot(2) == b"", "an empty snapshot survives a restart", "it read bytes")


CHECKS = (_save_and_read, _refusals, _generators_and_failing_sources, _same_and_different,
          _listing_and_compaction, _writer_rules, _resume_after_restart, _bad_digest, _supersede_and_abort,
          _empty_snapshots)


def check_snapshot_store(factory: StoreFactory) -> int:
    """Run every rule on fresh stores from ``factory(chunk_size)``; return how many checks ran."""
    first = factory(4)
    _expect(isinstance(first, SnapshotStore), "the protocol's members",
            f"{type(first).__name__} lacks some of SnapshotStore's methods (reopened included)")
    for check in CHECKS:
        try:
            check(factory)
        except ContractViolation:
            raise
        except Exception as error:  # noqa: BLE001 - a store error where the rule expects none
            rule = check.__name__.strip("_").replace("_", " ")
            raise _violation(rule, f"unexpected {type(error).__name__}: {error}") from error
    return len(CHECKS)

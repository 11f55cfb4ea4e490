"""``SqliteRaftStorage``: the Raft core's ``Storage``, durable, for nodes that are real processes.

Theory of operation. A restarted Raft node that forgot its vote can vote
twice in a term; one that forgot acknowledged entries can lose committed
data. So before a node sends the messages of a ``Ready`` its hard state and
new entries must be on disk. This storage is
:class:`~simulator.raft.MemStorageWithSnapshot` (the same class the
simulator uses, so reads, compaction rules and snapshot handling are not
forked) with every write also made durable in one sqlite3 database:

=================  ==========================================================
``meta``           hard state, membership, snapshot metadata (JSON rows)
``entries``        the log after the snapshot, one row per entry
``peers``          addresses of members learned from membership changes
=================  ==========================================================

Reads are served from memory, which mirrors the database exactly: the
database is only read when the process starts. Snapshot *data* lives in the
node's :class:`~simulator.snapshots.SnapshotStore` (``DiskSnapshotStore``,
``s3://``), never in sqlite; the metadata row points at it by index and
digest.

Why sqlite3 rather than a hand-written log: it is in the standard library,
its WAL mode gives atomic multi-row commits (entries and hard state of one
``Ready`` land together or not at all, see :meth:`ready_batch`) and it
survives ``kill -9`` at any instruction. ``synchronous=FULL``: in WAL mode
``NORMAL`` already survives a killed process, but not a power cut, whose
lost tail could be a vote already promised to a candidate; ``FULL`` fsyncs
the WAL at every commit, and batching a whole ``Ready`` into one commit
keeps that to one fsync per round of the Ready loop.

Ordering across the two stores, so a crash between them is harmless:
snapshot data is saved (fsynced) in the store *before* the metadata row
that refers to it, and the store keeps the previous snapshot too
(``keep_snapshots=2``), which is what the row still names if the process
dies in between.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import attrs

from simulator.raft import (
    ConfState,
    Entry,
    EntryType,
    HardState,
    MemStorageWithSnapshot,
    Snapshot,
    SnapshotMetadata,
)
from simulator.snapshots import SNAPSHOT_DIGESTS

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, entry_type INTEGER NOT NULL, data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS peers (node_id INTEGER PRIMARY KEY, address TEXT NOT NULL);
"""


def _conf_json(conf_state: ConfState) -> list:
    # A joint configuration keeps its outgoing half: a node restarted mid-change that
    # forgot it would count quorums in the new voters alone (a safety hole).
    joint = [list(conf_state.voters_outgoing), list(conf_state.learners_next), conf_state.auto_leave]
    return [list(conf_state.voters), list(conf_state.learners), *(joint if conf_state.is_joint else [])]


def _conf_from_json(value) -> ConfState:
    """``[voters, learners]``, or with ``[voters_outgoing, learners_next, auto_leave]`` after them when joint."""
    joint = {}
    if len(value) == 5:
        joint = {"voters_outgoing": tuple(value[2]), "learners_next": tuple(value[3]), "auto_leave": bool(value[4])}
    return ConfState(voters=tuple(value[0]), learners=tuple(value[1]), **joint)


class RaftLogCorruptError(ValueError):
    """The node's Raft log database cannot be trusted; the message names the file and why."""


@attrs.define(eq=False)
class SqliteRaftStorage(MemStorageWithSnapshot):
    """See the module docstring. Open one with :meth:`open`; close it with :meth:`close`."""

    path: Path | None = None
    _db: sqlite3.Connection | None = None
    _in_batch: bool = False
    #: Commits made (one fsync each with synchronous=FULL): a figure for benchmarks.
    commits: int = 0

    @classmethod
    def open(cls, path, data_store, initial_conf_state: ConfState, *, embed_data: bool = True) -> SqliteRaftStorage:
        """Open (or create) the database at ``path``.

        A new database starts as ``MemStorage.new_with_conf_state(initial_conf_state)``
        would: an empty log and the initial membership as if from a snapshot at index 0.
        An existing one is loaded as it was last committed; ``initial_conf_state`` is
        then ignored (the membership is whatever the log and snapshot say).
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            # Structure only (pages, b-trees, free lists): sqlite keeps no checksum of a row's
            # bytes, so this finds a damaged file, not a flipped bit inside a value.
            problems = [row[0] for row in db.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise RaftLogCorruptError(f"{path}: the Raft log database is damaged ({'; '.join(problems[:3])}); "
                                          "a database that passes sqlite's quick_check expected")
            db.executescript(_SCHEMA)
            storage = cls.new_with_conf_state(initial_conf_state, embed_data=embed_data, data_store=data_store,
                                              digests=SNAPSHOT_DIGESTS)
            storage.path = path
            storage._db = db
            rows = dict(db.execute("SELECT key, value FROM meta"))
            if not rows:
                with storage._write():
                    storage._save_meta("conf_state", _conf_json(storage.conf_state))
                    storage._save_snapshot_metadata(storage.snapshot_metadata)
                    storage._save_meta("hard_state", [0, 0, 0])
            else:
                storage._load(rows)
        except sqlite3.DatabaseError as error:
            db.close()
            raise RaftLogCorruptError(f"{path}: cannot read the Raft log database ({error}); an sqlite "
                                      "database written by raftsim node expected") from None
        except (KeyError, ValueError, TypeError) as error:
            db.close()
            if isinstance(error, RaftLogCorruptError):
                raise
            raise RaftLogCorruptError(f"{path}: the Raft log database holds rows raftsim did not write "
                                      f"({type(error).__name__}: {error}); its own meta rows expected") from None
        return storage

    def _load(self, rows: dict) -> None:
        term, vote, commit = json.loads(rows["hard_state"])
        self._hard_state = HardState(term=term, vote=vote, commit=commit)
        self._conf_state = _conf_from_json(json.loads(rows["conf_state"]))
        snap = json.loads(rows["snapshot"])
        self._snapshot_metadata = SnapshotMetadata(
            index=snap["index"], term=snap["term"], conf_state=_conf_from_json(snap["conf_state"]),
            size=snap["size"], digest=snap["digest"], snapshot_id=snap["snapshot_id"],
        )
        self._entries = [
            Entry(term=term, index=index, data=bytes(data), entry_type=EntryType(kind))
            for index, term, kind, data in self._db.execute(
                "SELECT idx, term, entry_type, data FROM entries ORDER BY idx"
            )
        ]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- transactions ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self):
        if self._in_batch:
            yield self._db
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        self.commits += 1

    @contextlib.contextmanager
    def ready_batch(self):
        """Every write inside lands in one commit (one fsync): entries and hard state of one Ready."""
        with self._write():
            self._in_batch = True
            try:
                yield
            finally:
                self._in_batch = False

    def _save_meta(self, key: str, value) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def _save_snapshot_metadata(self, meta: SnapshotMetadata) -> None:
        self._save_meta("snapshot", {
            "index": meta.index, "term": meta.term, "conf_state": _conf_json(meta.conf_state),
            "size": meta.size, "digest": meta.digest, "snapshot_id": meta.snapshot_id,
        })

    # -- writes, each made durable ----------------------------------------------------------

    def set_hard_state(self, hard_state: HardState) -> None:
        super().set_hard_state(hard_state)
        with self._write():
            self._save_meta("hard_state", [hard_state.term, hard_state.vote, hard_state.commit])

    def set_conf_state(self, conf_state: ConfState) -> None:
        super().set_conf_state(conf_state)
        with self._write():
            self._save_meta("conf_state", _conf_json(conf_state))

    def append(self, entries) -> None:
        super().append(entries)
        if not entries:
            return
        kept = [entry for entry in entries if entry.index >= self.first_index()]
        if not kept:
            return
        with self._write() as db:
            db.execute("DELETE FROM entries WHERE idx >= ?", (kept[0].index,))
            db.executemany(
                "INSERT INTO entries (idx, term, entry_type, data) VALUES (?, ?, ?, ?)",
                [(e.index, e.term, e.entry_type.value, e.data) for e in kept],
            )

    def compact(self, compact_index: int) -> None:
        super().compact(compact_index)
        with self._write() as db:
            db.execute("DELETE FROM entries WHERE idx < ?", (self.first_index(),))

    def create_snapshot(self, index: int, conf_state: ConfState | None = None, data: bytes | None = None) -> Snapshot:
        snapshot = super().create_snapshot(index, conf_state, data)  # data is in the store now
        with self._write():
            self._save_snapshot_metadata(snapshot.metadata)
        return snapshot

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        super().apply_snapshot(snapshot)
        with self._write() as db:
            self._save_snapshot_metadata(self._snapshot_metadata)
            db.execute("DELETE FROM entries")
            self._save_meta("conf_state", _conf_json(self._conf_state))
            hs = self._hard_state
            self._save_meta("hard_state", [hs.term, hs.vote, hs.commit])

    def apply_snapshot_with_data(self, snapshot: Snapshot) -> None:
        """Embedded install: the data goes to the store first (checked against the metadata
        by the store's digest), then the metadata row, so no row ever names missing data."""
        meta = snapshot.metadata
        if snapshot.data is None:
            raise ValueError(f"snapshot {meta.index} has no data; fetch it before apply_snapshot_with_data")
        if meta.size and meta.size != len(snapshot.data):
            raise ValueError(f"snapshot {meta.index} data is {len(snapshot.data)} bytes, metadata says {meta.size}")
        actual = self.digests.digest_of(snapshot.data, like=meta.digest)
        if meta.digest and actual != meta.digest:
            raise ValueError(f"snapshot {meta.index} data digest is {actual}, metadata says {meta.digest}")
        # The store hashes in its own (default) algorithm; a leader of an older version may have
        # named another one (sha256). The bytes were checked against the leader's digest above, so
        # the snapshot is recorded under the digest the store holds for the very same bytes.
        stored = actual if actual.partition(":")[0] == self.digests.default else self.digests.digest_of(snapshot.data)
        store = self.data_store
        if not (store.has_snapshot(meta.index) and store.snapshot_metadata(meta.index).digest == stored):
            store.save_snapshot(meta.index, snapshot.data, term=meta.term, snapshot_id=meta.snapshot_id or None)
        self.apply_snapshot_from_store(attrs.evolve(snapshot, metadata=attrs.evolve(meta, digest=stored)))

    # -- peers learned from membership changes ------------------------------------------------

    def peer_addresses(self) -> dict[int, str]:
        return dict(self._db.execute("SELECT node_id, address FROM peers"))

    def save_peer_address(self, node_id: int, address: str) -> None:
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO peers (node_id, address) VALUES (?, ?)", (node_id, address))

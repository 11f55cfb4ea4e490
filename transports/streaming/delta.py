"""The receiving half of dedup (``Streaming(dedup=True)``): ask only for the bytes not already held.

A receiver that holds an older complete snapshot (a restarted follower, a
follower one compaction behind) asks the sender for the new snapshot's
manifest — its content-defined pieces, see :mod:`simulator.snapshots.dedup`
— before any data. From then on it walks its writer forward: each run of
pieces it holds is copied from its own store (every piece checked against
its digest), and each run it lacks is asked for with a ranged
:class:`SnapshotRequest` (``offset`` .. ``end``) and arrives as ordinary
checksummed chunks. The writer's commit checks the digest of the whole, as
for any transfer, so nothing unverified is ever installed.

Without an older snapshot, or when the manifest or a held piece fails, the
transfer goes on as a plain one: dedup only ever saves bytes.

Mixed into the endpoint; it uses the endpoint's host, store and writer.
"""

from __future__ import annotations

from simulator.snapshots import SnapshotStoreError
from simulator.snapshots.dedup import HeldCopier, HeldPieces, Piece

from .messages import SnapshotManifest, SnapshotManifestRequest
from .protocol import IncomingTransfer


class DeltaReceiving:
    """Receiver-side dedup of a streaming endpoint; not usable on its own."""

    #: The current transfer's dedup state: ``None`` (plain), ``"manifest"`` (asked), or the copier.
    _delta: HeldCopier | str | None = None
    #: ``(snapshot id, HeldPieces)`` of the receiver's own newest snapshot, cut once.
    _held_cache: tuple[str, HeldPieces] | None = None

    def _delta_begin(self, transfer: IncomingTransfer) -> bool:
        """Start dedup for a new transfer if the store holds an older snapshot; whether it did."""
        self._delta = None
        if not getattr(self.mode, "dedup", False):
            return False
        older = [snapshot for snapshot in self.store.list_snapshots() if snapshot.index < transfer.offer.index]
        if not older:
            return False
        self._delta = "manifest"
        self._ask_manifest(transfer)
        return True

    def _ask_manifest(self, transfer: IncomingTransfer) -> None:
        offer = transfer.offer
        self.host.event("snapshot_manifest_request", to=offer.source, index=offer.index)
        self.host.send(SnapshotManifestRequest(from_=self.node_id, to=offer.source, snapshot_index=offer.index,
                                               snapshot_term=offer.term, snapshot_id=offer.snapshot_id))
        self._arm_receive_timer(transfer)

    def _held_pieces(self) -> HeldPieces:
        newest = self.store.latest()
        if newest is None:
            raise SnapshotStoreError("the older snapshot is gone (compacted or removed) since the manifest was asked")
        if self._held_cache is None or self._held_cache[0] != newest.snapshot_id:
            self._held_cache = (newest.snapshot_id, HeldPieces.of(self.store, newest.index))
        return self._held_cache[1]

    def on_manifest(self, manifest: SnapshotManifest) -> None:
        transfer = self.incoming
        if transfer is None or manifest.snapshot_id != transfer.offer.snapshot_id or self._delta != "manifest":
            self.counters["stray_manifest"] += 1
            return
        try:
            pieces, position = [], 0
            for length, digest in manifest.pieces:
                pieces.append(Piece(offset=position, length=length, digest=digest))
                position += length
            copier = HeldCopier(self.store, self._held_pieces(), tuple(pieces), transfer.offer.size)
        except (SnapshotStoreError, OSError, TypeError, ValueError) as error:
            self._delta_off(transfer, f"manifest unusable: {error}")
            return
        self._delta = copier
        self.host.event("transfer_dedup", source=transfer.offer.source, index=transfer.offer.index,
                        pieces=len(pieces), held_bytes=copier.held_bytes, size=transfer.offer.size)
        self._request(transfer)

    def _delta_off(self, transfer: IncomingTransfer, reason: str) -> None:
        """Go on as a plain transfer from the verified offset (dedup only ever saves bytes)."""
        self.counters["dedup_abandoned"] += 1
        self.host.event("transfer_dedup", source=transfer.offer.source, index=transfer.offer.index,
                        abandoned=reason)
        self._delta = None
        self._request(transfer)

    def _delta_range(self, transfer: IncomingTransfer) -> tuple[bool, int | None]:
        """Before a request: copy the held pieces at the verified offset.

        Returns ``(ask, end)``: whether to send a request at all (no: the
        manifest is still awaited, which was asked again, or the copy
        completed the snapshot, which was committed), and the ranged end.
        """
        delta = self._delta
        if delta is None:
            return True, None
        if delta == "manifest":
            self._ask_manifest(transfer)
            return False, None
        try:
            offset = delta.copy_held(self._writer, getattr(self.store, "chunk_size", self.mode.chunk_size))
        except (SnapshotStoreError, OSError) as error:
            self._delta = None
            self.counters["dedup_abandoned"] += 1
            self.host.event("transfer_dedup", source=transfer.offer.source, index=transfer.offer.index,
                            abandoned=f"a held piece failed: {error}")
            return True, None
        copied = offset - transfer.verified_offset
        if copied:
            transfer.advance(copied, self.host.now(), measure=False)
            record = self.registry.get(self.node_id, transfer.offer.snapshot_id)
            if record is not None:
                record.bytes_done = transfer.verified_offset
        if transfer.complete:
            self._complete()
            return False, None
        return True, delta.missing_until(transfer.verified_offset)

    def _delta_run_done(self, transfer: IncomingTransfer) -> bool:
        """After a verified chunk: whether the requested range is exhausted (ask for the next one)."""
        delta = self._delta
        return (not isinstance(delta, str) and delta is not None and not transfer.complete
                and delta.missing_until(transfer.verified_offset) == transfer.verified_offset)

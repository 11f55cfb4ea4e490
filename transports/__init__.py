"""How bytes move between simulated nodes (layer 2).

This package will hold the trio side of the simulator:

- ``InMemoryClusterTransport``: delivers Raft messages between the nodes of
  one cluster over trio memory channels, in a deterministic total order, with
  the network faults (partitions, latency, loss, ...) applied on each link.
- ``Embedded``: the snapshot transfer mode where the snapshot message carries
  the whole snapshot. Simple, memory-hungry, all-or-nothing.
- ``Streaming``: the snapshot transfer mode where the snapshot message carries
  only metadata and the follower pulls verified, resumable chunks from the
  leader's ``SnapshotStore`` out of band.

It may import trio, attrs, the standard library, ``simulator.raft`` and
``simulator.snapshots``, and nothing else from ``simulator`` (see DESIGN.md
section 2). Like trio's own ``__init__``, this module will only re-export
names defined in private modules. Nothing is public yet.
"""

__all__: list[str] = []

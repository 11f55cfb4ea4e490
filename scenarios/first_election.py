"""First election: three nodes elect a leader, lose it, elect another, and catch a
lagging node up with a snapshot.

Run it with ``python -m scenarios.first_election [--seed N]``. It drives the
Raft cores with the synchronous harness (no trio yet), one tick at a time,
and narrates what each node does. The same seed prints the same story.
"""

from __future__ import annotations

import argparse

from simulator import Role
from simulator.testing import Network


def describe(net: Network) -> str:
    parts = []
    for node_id in sorted(net.nodes):
        if not net.nodes[node_id].is_up:
            parts.append(f"n{node_id}: down")
            continue
        stats = net.node(node_id).statistics()
        parts.append(
            f"n{node_id}: {stats.role.value:<13} term {stats.term} "
            f"commit {stats.commit} applied {stats.applied}"
        )
    return "\n    ".join(parts)


def tick_until_leader(net: Network, max_rounds: int = 200, exclude: int | None = None) -> int:
    """Tick every live node once per round until a leader (other than ``exclude``) appears."""
    for rounds in range(1, max_rounds + 1):
        net.tick_all()
        net.stabilize()
        leader = next(
            (
                node_id
                for node_id in net.live_ids()
                if node_id != exclude and net.node(node_id).raft.role is Role.LEADER
            ),
            None,
        )
        if leader is not None:
            print(f"  after {rounds} ticks, n{leader} won term {net.node(leader).raft.term}")
            return leader
    raise SystemExit(f"no leader after {max_rounds} ticks: the cluster is stuck")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1, help="run seed (same seed, same story)")
    args = parser.parse_args(argv)

    net = Network([1, 2, 3], seed=args.seed)
    print(f"Three nodes start as followers (seed {args.seed}). Each waits a random")
    print("election timeout of 10-19 ticks; the first to time out asks for votes.")
    leader = tick_until_leader(net)
    print("    " + describe(net))

    print("\nThe leader takes five client commands and replicates them.")
    for number in range(5):
        net.propose(leader, f"set x={number}".encode())
    net.stabilize()
    print("    " + describe(net))

    print(f"\nn{leader} is cut off from the others. It keeps believing it leads until")
    print("check-quorum notices it has not heard from a majority, and it steps down.")
    net.isolate(leader)
    old_leader = leader
    leader = tick_until_leader(net, exclude=old_leader)
    for _ in range(25):
        net.tick(old_leader)
    print("    " + describe(net))

    print(f"\nn{leader} takes more commands while n{old_leader} is away, then compacts")
    print("its log into a snapshot: the entries n{0} missed are gone.".format(old_leader))
    for number in range(5, 10):
        net.propose(leader, f"set x={number}".encode())
    net.stabilize()
    net.compact(leader)
    print(f"  n{leader} snapshot at index {net.nodes[leader].storage.snapshot_metadata.index}")

    print(f"\nThe network heals. n{old_leader} is behind the compaction point, so the")
    print("leader sends it the snapshot instead of entries.")
    net.heal()
    for _ in range(3):
        net.tick_all()
        net.stabilize()
    print("    " + describe(net))
    stats = net.node(leader).statistics()
    print(f"  snapshots sent by n{leader}: {stats.event('snapshots_sent')}")

    same = len({tuple(net.applied(node_id)) for node_id in net.nodes}) == 1
    print(f"\nEvery node applied the same {len(net.applied(leader))} commands: {same}")
    print(f"Invariant checks passed: {net.checker.checks}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Property test: joint consensus and ReadIndex under random interleavings (issue 17).

Hypothesis draws a schedule for a five-node harness network (voters 1-3,
learners 4 and 5): ticks, single message deliveries and drops,
partitions, crashes and restarts, proposals, joint membership changes
(``ConfChangeV2`` with any transition, and explicit leaves) and reads. The
harness's ``InvariantChecker`` checks election safety, log matching, leader
completeness and state machine safety after every step. On top, every read
is checked for linearizability: the read index a node hands back is at least
every commit index any node had reached when the read was asked for. At the
end, with the faults gone, the cluster must elect a leader and commit again.
"""

from __future__ import annotations

from conftest import profile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator import (
    ConfChangePendingError,
    ConfChangeTransition,
    ConfChangeV2,
    Config,
    InvalidConfChangeError,
    ProposalDroppedError,
    Role,
)
from simulator.testing import Network

EXAMPLES = {"ci": 120, "thorough": 3000}[profile()]
IDS = st.integers(1, 5)
ACTIONS = st.one_of(
    st.tuples(st.just("tick"), IDS, st.integers(1, 12)),
    st.tuples(st.just("tick_all"), st.integers(1, 6)),
    st.tuples(st.just("deliver"), st.integers(0, 40)),
    st.tuples(st.just("drop"), st.integers(0, 40)),
    st.tuples(st.just("partition"), st.sets(IDS, min_size=1, max_size=3).map(sorted).map(tuple)),
    st.tuples(st.just("heal")),
    st.tuples(st.just("crash"), IDS),
    st.tuples(st.just("restart"), IDS),
    st.tuples(st.just("propose"), IDS),
    st.tuples(st.just("read"), IDS),
    st.tuples(st.just("joint"), IDS, st.sets(IDS, max_size=2).map(sorted).map(tuple),
              st.sets(IDS, max_size=2).map(sorted).map(tuple), st.sampled_from(list(ConfChangeTransition))),
    st.tuples(st.just("leave"), IDS),
    st.tuples(st.just("stabilize")),
)


class ReadIndexWatch:
    """Remembers, per read, the highest commit index any node had when it was asked."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.floor: dict[bytes, int] = {}
        self.seen: dict[int, int] = {}

    def highest_commit(self) -> int:
        commits = [node.storage.hard_state.commit for node in self.net.nodes.values()]
        commits += [self.net.node(n).raft.raft_log.committed for n in self.net.live_ids()]
        return max(commits)

    def asked(self, context: bytes) -> None:
        self.floor[context] = self.highest_commit()

    def check(self) -> None:
        for node_id, states in self.net.read_states.items():
            for state in states[self.seen.get(node_id, 0):]:
                floor = self.floor[state.request_ctx]
                assert state.index >= floor, (
                    f"node {node_id} got read index {state.index} for {state.request_ctx!r}, "
                    f"but index {floor} was already committed when the read was asked"
                )
            self.seen[node_id] = len(states)


def perform(net: Network, watch: ReadIndexWatch, action: tuple, number: int) -> None:
    kind, *args = action
    up = set(net.live_ids())
    if kind == "tick" and args[0] in up:
        net.tick(args[0], args[1])
    elif kind == "tick_all":
        net.tick_all(args[0])
    elif kind in ("deliver", "drop") and net.in_flight:
        position = args[0] % len(net.in_flight)
        if kind == "deliver":
            net.deliver_at(position)
        else:
            net.in_flight.pop(position)
    elif kind == "partition":
        net.heal()
        net.partition(args[0])
    elif kind == "heal":
        net.heal()
    elif kind == "crash" and args[0] in up and len(up) > 1:
        net.crash(args[0])
    elif kind == "restart" and args[0] not in up:
        net.restart(args[0])
    elif kind == "stabilize":
        net.stabilize()
    elif args and args[0] in up:
        node = net.node(args[0])
        try:
            if kind == "propose":
                net.propose(args[0], b"w%d" % number)
            elif kind == "read":
                context = b"r%d" % number
                watch.asked(context)
                node.read_index(context)
                net.process_readies()
            elif kind == "joint":
                _, _, add, remove, transition = action
                net.propose_conf_change(args[0], ConfChangeV2.of(add=add, remove=remove, transition=transition))
            elif kind == "leave":
                net.propose_conf_change(args[0], ConfChangeV2())
        except (ProposalDroppedError, ConfChangePendingError, InvalidConfChangeError):
            pass  # refused, as it may be
    watch.check()


def run_schedule(seed: int, actions) -> tuple[Network, ReadIndexWatch]:
    net = Network((1, 2, 3), learners=(4, 5), seed=seed,
                  config=lambda node_id: Config(id=node_id, election_tick=6))
    watch = ReadIndexWatch(net)
    net.campaign(1)
    for number, action in enumerate(actions):
        perform(net, watch, action, number)
    return net, watch


def test_a_schedule_reaches_a_joint_configuration_and_confirmed_reads():
    """The actions do what they say: the random schedules draw from these same kinds."""
    explicit = ConfChangeTransition.EXPLICIT
    net, watch = run_schedule(0, [
        ("joint", 1, (4, 5), (2, 3), explicit), ("stabilize",), ("read", 1), ("stabilize",),
        ("partition", (1, 3, 4)), ("read", 1), ("stabilize",),  # a majority of each half: served
        ("partition", (1, 4, 5)), ("read", 1), ("stabilize",),  # the old half has only n1: not served
    ])
    assert net.node(1).raft.conf_state.voters_outgoing == (1, 2, 3)
    assert [s.request_ctx for s in net.read_states[1]] == [b"r2", b"r5"]
    assert len(watch.floor) == 3


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), actions=st.lists(ACTIONS, max_size=40))
def test_joint_changes_and_reads_stay_safe_under_any_interleaving(seed, actions):
    net, watch = run_schedule(seed, actions)

    # Faults stop: every node back, every link working; a leader must emerge and commit.
    net.heal()
    for node_id in sorted(net.nodes):
        if not net.nodes[node_id].is_up:
            net.restart(node_id)
    for _ in range(200):
        net.tick_all()
        net.stabilize()
        leader = net.leader_id()
        if leader is not None and not net.node(leader).raft.conf_state.is_joint or (
            leader is not None and not net.node(leader).raft.conf_state.auto_leave
        ):
            break
    leader = net.leader_id()
    assert leader is not None and net.node(leader).raft.role is Role.LEADER
    net.propose(leader, b"final")
    net.stabilize()
    assert net.applied(leader)[-1] == b"final"
    watch.check()

"""The property tests have teeth: each deliberate defect is caught and shrunk small.

``simulator.raft.defects`` can switch on three real-looking bugs. For each,
a hypothesis search with the defect on must find a failing example, name
the right invariant, shrink it to a handful of steps, and the same example
must pass with the defect off (so the defect, not the example, is to blame).

- ``install_unverified`` and ``resume_from_zero`` are found by the same
  cluster-level search as ``tests/test_cluster_properties.py`` (random fault
  programs on a trio cluster; here only the steps that make and disturb
  snapshot transfers, to keep CI quick), and the counterexample is written
  as a scenario file that ``raftsim run`` replays with the same trace hash.
- ``commit_old_term`` hides from unguided search: a leader appends an
  empty entry of its own term as soon as it is elected, so the old-term
  entry is normally committed together with it, and the rule only matters
  in the moment between a follower acknowledging the old entry and the new
  one. Random programs (cluster-level and message-level, 3000 examples each)
  never hit that moment. So its search draws from the family of histories
  shaped like figure 8 of the Raft paper — who leads first, who rivals it,
  how many entries each writes alone, how many round trips the returning
  leader gets before it falls silent — and checks the same invariants.

The number of examples each search needs is deterministic (hypothesis is
seeded, no database); the tests print it (``pytest -s``).
"""

from __future__ import annotations

import io
import json

import attrs
import pytest
from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st

from simulator import Config, MessageType, SearchSpace, search
from simulator.cli import main as raftsim
from simulator.explore.search import run_example
from simulator.checks.invariants import InvariantViolation
from simulator.raft import defects
from simulator.testing import Network

#: Largest shrunk example we accept as "small".
SMALL = 6


# -- the two snapshot-transfer defects, found by the cluster-level search ---------------


@pytest.mark.parametrize(
    "defect, invariant",
    [
        (defects.INSTALL_UNVERIFIED, "installed snapshot equals the leader's state"),
        (defects.RESUME_FROM_ZERO, "a resumed transfer re-sends at most one chunk"),
    ],
)
def test_the_cluster_search_catches_a_transfer_defect(defect, invariant, tmp_path, capsys):
    space = SearchSpace(mode="streaming", defects=(defect,), vocabulary="transfers",
                        max_steps=8, warmup=20, liveness_within=15.0)
    found = search(space, tmp_path / "runs", max_examples=400)
    assert found is not None, f"{defect}: no failing program in 400 examples"
    with capsys.disabled():
        print(f"\n{defect}: found after {found.examples_until_found} examples, "
              f"{found.examples_run} with shrinking: {found.program!r} seed={found.seed}")
    assert found.failure.startswith(invariant), found.failure
    assert len(found.program) <= SMALL, found.program

    # The same program and seed fail the same way with disk stores, and pass without the defect.
    on_disk = run_example(found.program, attrs.evolve(space, store="disk"), found.seed, tmp_path / "runs")
    assert on_disk.violations[0].startswith(invariant)
    healthy = run_example(found.program, attrs.evolve(space, defects=()), found.seed, tmp_path / "runs")
    assert healthy.ok, healthy.violations + healthy.failed_checks

    # The counterexample is a scenario file that replays byte for byte.
    path = found.write_scenario(tmp_path / "counterexample.py")
    assert f"DEFECTS = ({defect!r},)" in path.read_text()
    out = io.StringIO()
    code = raftsim(["run", str(path), "--seed", str(found.seed), "--mode", "streaming", "--json"], out=out)
    assert code == 1
    summary = json.loads(out.getvalue())
    assert summary["trace_sha256"] == found.trace_sha256
    assert summary["violations"][0].startswith(invariant)



# -- the commit rule, found in the family of figure-8 histories ---------------------------


#: One entry per append message, so an old-term entry can be acknowledged before
#: the new leader's own entry; no pre-vote or leader lease, so elections need no ticks.
def _config(node_id: int) -> Config:
    return Config(id=node_id, max_size_per_msg=1, pre_vote=False, check_quorum=False)


@attrs.frozen
class Figure8:
    """A history shaped like the Raft paper's figure 8.

    ``first`` leads and writes ``lone_entries`` entries nobody receives;
    ``rival`` wins the next term with the other voters and writes entries
    nobody receives; ``first`` wins again with those voters and gets
    ``round_trips`` append round trips with them before it falls silent;
    finally ``rival`` runs again.
    """

    size: int
    first: int
    rival: int
    lone_entries: int
    rival_entries: int
    round_trips: int
    seed: int

    def play(self) -> None:
        net = Network(range(1, self.size + 1), seed=self.seed, config=_config)
        net.campaign(self.first)
        voters = [n for n in range(1, self.size + 1) if n not in (self.first, self.rival)]
        for _ in range(self.lone_entries):
            net.propose(self.first, b"written by the first leader")
        _drop_from(net, self.first)
        _elect(net, self.rival, voters, hear_first=self.first)
        for _ in range(self.rival_entries):
            net.propose(self.rival, b"written by the rival")
        _drop_from(net, self.rival)
        _elect(net, self.first, voters, hear_first=self.rival)
        for _ in range(self.round_trips):
            for voter in voters:
                _round_trip(net, self.first, voter)
        _drop_from(net, self.first)
        _elect(net, self.rival, voters, hear_first=self.first)


VOTES = (MessageType.REQUEST_VOTE, MessageType.REQUEST_VOTE_RESPONSE)


def _drop_from(net: Network, node: int) -> None:
    """Lose what ``node`` replicates; its vote requests stay (they tell of its term)."""
    net.in_flight[:] = [m for m in net.in_flight if m.from_ != node or m.msg_type in VOTES]


def _elect(net: Network, candidate: int, voters: list[int], *, hear_first: int) -> None:
    """``candidate`` learns of the newest term (from ``hear_first``'s vote request, if any
    is in flight), campaigns, and exchanges votes with ``voters`` only."""
    for position, message in enumerate(net.in_flight):
        if message.msg_type is MessageType.REQUEST_VOTE and (message.from_, message.to) == (hear_first, candidate):
            net.deliver_at(position)
            break
    net.node(candidate).campaign()
    net.process_readies()
    group = {candidate, *voters}
    while True:
        for position, message in enumerate(net.in_flight):
            if message.msg_type in VOTES and message.from_ in group and message.to in group:
                net.deliver_at(position)
                break
        else:
            return


def _round_trip(net: Network, leader: int, follower: int) -> None:
    """Deliver the oldest append from ``leader`` to ``follower``, then the oldest reply."""
    for src, dst in ((leader, follower), (follower, leader)):
        for position, message in enumerate(net.in_flight):
            if (message.from_, message.to) == (src, dst) and message.msg_type not in VOTES:
                net.deliver_at(position)
                break


@st.composite
def figure8_histories(draw) -> Figure8:
    size = draw(st.sampled_from([3, 5]))
    first, rival = draw(st.lists(st.integers(1, size), min_size=2, max_size=2, unique=True))
    return Figure8(
        size=size, first=first, rival=rival,
        lone_entries=draw(st.integers(1, 3)), rival_entries=draw(st.integers(0, 2)),
        round_trips=draw(st.integers(0, 6)), seed=draw(st.integers(0, 2**16)),
    )


def _breaks_safety(history: Figure8) -> bool:
    try:
        history.play()
    except InvariantViolation:
        return True
    return False


SEARCH = settings(max_examples=500, database=None, derandomize=True, deadline=None,
                  phases=(Phase.generate, Phase.shrink), suppress_health_check=list(HealthCheck))


def test_every_figure8_history_is_safe_with_the_commit_rule_intact():
    with pytest.raises(Exception) as raised:
        find(figure8_histories(), _breaks_safety, settings=SEARCH)
    assert type(raised.value).__name__ == "NoSuchExample"


def test_the_search_catches_a_leader_committing_an_old_term_entry(capsys):
    tried: list[Figure8] = []
    first_failure: list[int] = []

    def breaks(history: Figure8) -> bool:
        tried.append(history)
        failed = _breaks_safety(history)
        if failed and not first_failure:
            first_failure.append(len(tried))
        return failed

    with defects.injected(defects.COMMIT_OLD_TERM):
        smallest = find(figure8_histories(), breaks, settings=SEARCH)
    with capsys.disabled():
        print(f"\ncommit_old_term: first failing history after {first_failure[0]} examples, "
              f"{len(tried)} with shrinking: {smallest!r}")
    # The shrunk history is the paper's: three nodes, one lone entry, nothing else written.
    assert smallest.size == 3 and smallest.lone_entries == 1 and smallest.rival_entries == 0
    with defects.injected(defects.COMMIT_OLD_TERM), pytest.raises(InvariantViolation) as raised:
        smallest.play()
    assert raised.value.invariant in ("leader completeness", "state machine safety")
    smallest.play()  # the same history with the rule intact is safe

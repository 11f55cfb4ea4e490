"""``Sim``: what a scenario's story gets: the cluster, its parameters, a voice and checks."""

from __future__ import annotations

import random

import trio

from transports import Streaming

from ..cluster.client import LivenessError, ProposalTimeoutError
from ..cluster.cluster import Cluster
from ..machines.state_machines import WorkflowExecutor
from ..observe.trace import CLUSTER, SCENARIO
from .script import RunOptions

#: About what the workflow executor keeps per workflow besides its payload.
WORKFLOW_BOOKKEEPING = 128


class Sim:
    """What a scenario gets: the cluster, its parameters, a voice, and the
    set-up steps that stories share (state sized in chunks, waiting for a
    transfer to get somewhere), so each scenario reads as its story."""

    def __init__(self, cluster: Cluster, params: dict, options: RunOptions) -> None:
        self.cluster = cluster
        self.params = params
        self.options = options
        self.checks: list[tuple[str, bool]] = []
        # The story begins after the nodes started: in a round of its own, so that
        # words it says at time 0 come after "n1 started", not before.
        new_round = getattr(cluster.trace, "on_batch", None)
        if new_round is not None:
            new_round()

    @property
    def mode(self) -> str:
        return self.options.mode

    @property
    def network(self) -> str:
        """``simulated`` (one process, virtual time) or ``grpc`` (node processes on the wall clock:
        what only a simulated network records, such as each message's arrival, is not there)."""
        return getattr(self.cluster, "network", "simulated")

    def say(self, text: str) -> None:
        """Narrate a step of the story (it goes into the trace, so it replays too)."""
        self.cluster.trace.event(trio.current_time(), CLUSTER, "say", SCENARIO, text=text)

    def check(self, condition: bool, text: str) -> bool:
        """Record one of the scenario's own checks; a failed one makes the run fail."""
        self.checks.append((text, bool(condition)))
        self.cluster.trace.event(trio.current_time(), CLUSTER, "check", SCENARIO,
                                 text=text, ok=bool(condition))
        return bool(condition)



    @property
    def chunk_size(self) -> int:
        """The run's chunk size: the streaming mode's, else ``--chunk-size``, else
        the ``Streaming`` default. Scenarios size their state in chunks in every
        mode, so that ``raftsim compare`` compares one workload."""
        return (getattr(self.cluster.snapshot_mode, "chunk_size", None) or self.options.chunk_size
                or Streaming().chunk_size)

    def workflow_payload(self, *, chunks: int, workflows: int) -> int:
        """Payload bytes per workflow so that ``workflows`` of them make a snapshot
        a little under ``chunks`` chunks of :attr:`chunk_size`."""
        return max(0, chunks * self.chunk_size // workflows - WORKFLOW_BOOKKEEPING)

    async def load_workflows(self, count: int, payload: int, *, random_bytes: bool = False,
                             timeout: float = 60) -> None:
        """Propose ``count`` one-step workflows ``wf-0``, ``wf-1``... of ``payload`` bytes each.

        The payload repeats one byte per workflow; ``random_bytes=True`` draws it
        from a generator seeded by the workflow's number instead (for engines
        that compress their snapshots, where repeated bytes would shrink to nothing).
        """
        for number in range(count):
            data = random.Random(number).randbytes(payload) if random_bytes else bytes([number % 256]) * payload
            await self.cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["fetch"], data), timeout=timeout)

    async def wait_for_transfer(self, to: int, *, chunks: int = 0, timeout: float = 30) -> None:
        """Wait until a snapshot transfer to node ``to`` has begun and, with
        ``chunks=k``, until it holds at least k verified chunks.

        It looks every millisecond of virtual time (chunks can be quick) and
        raises ``trio.TooSlowError`` after ``timeout`` virtual seconds.
        """
        wanted = chunks * self.chunk_size
        with trio.fail_after(timeout):
            while not any(t.to == to and t.bytes_done >= wanted for t in self.cluster.transfers()):
                await trio.sleep(0.001)

    async def join_within(self, within: float) -> bool:
        """Add a node as a learner and wait up to ``within`` virtual seconds for it to catch up.

        For the catch-up stories whose point may be that it never does (a policy that
        starts over on a flaky link): instead of raising, it says so and returns ``False``,
        so the story can still report the transfers and check the outcome.
        """
        newcomer = max(self.cluster.node_ids) + 1
        try:
            await self.cluster.add_node(promote=False, timeout=within)
        except (LivenessError, ProposalTimeoutError) as stuck:
            self.say(f"after {within:g} s n{newcomer} has still not caught up ({type(stuck).__name__})")
            return False
        return True

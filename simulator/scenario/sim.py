"""``Sim``: what a scenario's story gets: the cluster, its parameters, a voice and checks."""

from __future__ import annotations

import trio

from ..cluster.cluster import Cluster
from ..observe.trace import CLUSTER, SCENARIO
from .script import RunOptions


class Sim:
    """What a scenario gets: the cluster, its parameters, and a voice."""

    def __init__(self, cluster: Cluster, params: dict, options: RunOptions) -> None:
        self.cluster = cluster
        self.params = params
        self.options = options
        self.checks: list[tuple[str, bool]] = []

    @property
    def mode(self) -> str:
        return self.options.mode

    def say(self, text: str) -> None:
        """Narrate a step of the story (it goes into the trace, so it replays too)."""
        self.cluster.trace.event(trio.current_time(), CLUSTER, "say", SCENARIO, text=text)

    def check(self, condition: bool, text: str) -> bool:
        """Record one of the scenario's own checks; a failed one makes the run fail."""
        self.checks.append((text, bool(condition)))
        self.cluster.trace.event(trio.current_time(), CLUSTER, "check", SCENARIO,
                                 text=text, ok=bool(condition))
        return bool(condition)



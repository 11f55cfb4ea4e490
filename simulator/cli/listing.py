"""``raftsim list``: the scenarios there are to run."""

from __future__ import annotations

NAME = "list"


def add_parser(commands) -> None:
    commands.add_parser(NAME, help="list the scenarios")


def execute(args, out) -> int:
    from simulator.scenario import find_scenarios

    scenarios = find_scenarios()
    width = max((len(info.name) for info in scenarios), default=0)
    for info in scenarios:
        print(f"{info.name:<{width}}  {info.description}", file=out)
    return 0

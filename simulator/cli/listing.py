"""``raftsim list``: the scenarios there are to run, in reading order, with what each supports.

The order is the one ``scenarios/README.md`` teaches them in
(:data:`READING_ORDER`); a scenario not named there comes after, by name.
Each line says which snapshot modes and which engines the scenario runs
on, and marks the ones that fail on purpose (a scenario's
``FAILS_ON_PURPOSE = "why"``: it shows a bug or a broken assumption, and
exits 1 unless told how to avoid it).
"""

from __future__ import annotations

import json

NAME = "list"

#: The scenarios in the order scenarios/README.md reads them.
READING_ORDER = (
    "basic", "node_join", "snapshot_unavailable", "large_snapshot", "mid_transfer_failure",
    "partition_during_transfer", "follower_restart_disk", "leader_change_during_transfer",
    "compaction_race", "joint_consensus_swap", "pysyncobj_receiver_crash",
    "pysyncobj_empty_snapshot_loop", "pysyncobj_large_command",
)
FAILS_ON_PURPOSE = "fails on purpose"


def add_parser(commands) -> None:
    listing = commands.add_parser(NAME, help="list the scenarios in reading order, with their modes and engines")
    listing.add_argument("--json", action="store_true", help="print the list as JSON")


def reading_order(scenarios: list) -> list:
    """``scenarios`` sorted as the README reads them, the ones it does not name last."""
    position = {name: number for number, name in enumerate(READING_ORDER)}
    return sorted(scenarios, key=lambda info: (position.get(info.name, len(READING_ORDER)), info.name))


def facts(info) -> dict:
    """What a scenario supports: modes, engines, and whether it fails on purpose."""
    from simulator.scenario import load_module

    module = load_module(info.path)
    engines = list(getattr(module, "ENGINES", ("native",)))
    modes = list(getattr(module, "MODES", ("embedded", "streaming"))) if "native" in engines else []
    return {"name": info.name, "description": info.description, "modes": modes, "engines": engines,
            "fails_on_purpose": getattr(module, "FAILS_ON_PURPOSE", None)}


def execute(args, out) -> int:
    from simulator.scenario import find_scenarios

    rows = [facts(info) for info in reading_order(find_scenarios())]
    if args.json:
        print(json.dumps(rows), file=out)
        return 0
    width = max((len(row["name"]) for row in rows), default=0)
    print("Scenarios in reading order (scenarios/README.md explains each); "
          "modes: native snapshot modes; engines: --engine\n", file=out)
    print(f"    {'name':<{width}}  {'modes':<20} {'engines':<18} what it shows", file=out)
    for number, row in enumerate(rows, start=1):
        modes = ", ".join(row["modes"]) or "-"
        engines = ", ".join(row["engines"])
        note = f" [{FAILS_ON_PURPOSE}: {row['fails_on_purpose']}]" if row["fails_on_purpose"] else ""
        print(f"{number:>2}. {row['name']:<{width}}  {modes:<20} {engines:<18} {row['description']}{note}",
              file=out)
    return 0

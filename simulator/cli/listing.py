"""``raftsim list``: the scenarios there are to run, in reading order, with what each supports.

The order is the one ``scenarios/README.md`` teaches them in (its numbered
steps: one list to keep, the README's); a scenario not named there comes
after, by name.
Each line says which snapshot modes and which engines the scenario runs
on, and marks the ones that fail on purpose (a scenario's
``FAILS_ON_PURPOSE = "why"``: it shows a bug or a broken assumption, and
exits 1 unless told how to avoid it).
"""

from __future__ import annotations

import json
import re

NAME = "list"

#: A step of scenarios/README.md: "## 4. Why stream at all: `large_snapshot`".
_README_STEP = re.compile(r"^## \d+\. .*?`(\w+)`", re.M)
FAILS_ON_PURPOSE = "fails on purpose"


def add_parser(commands) -> None:
    listing = commands.add_parser(NAME, help="list the scenarios in reading order, with their modes and engines")
    listing.add_argument("--json", action="store_true", help="print the list as JSON")


def readme_order(readme) -> list[str]:
    """The scenario names of the README's numbered steps, in order (none if it cannot be read)."""
    try:
        return _README_STEP.findall(readme.read_text(encoding="utf-8"))
    except OSError:
        return []


def reading_order(scenarios: list, readme) -> list:
    """``scenarios`` sorted as ``readme`` teaches them, the ones it does not name last, by name."""
    order = readme_order(readme)
    position = {name: number for number, name in enumerate(order)}
    return sorted(scenarios, key=lambda info: (position.get(info.name, len(order)), info.name))


def facts(info) -> dict:
    """What a scenario supports: modes, engines, and whether it fails on purpose."""
    from simulator.scenario import load_module

    module = load_module(info.path)
    engines = list(getattr(module, "ENGINES", ("native",)))
    modes = list(getattr(module, "MODES", ("embedded", "streaming"))) if "native" in engines else []
    return {"name": info.name, "description": info.description, "modes": modes, "engines": engines,
            "fails_on_purpose": getattr(module, "FAILS_ON_PURPOSE", None)}


def execute(args, out) -> int:
    from simulator.scenario import SCENARIO_DIR, find_scenarios

    rows = [facts(info) for info in reading_order(find_scenarios(), SCENARIO_DIR / "README.md")]
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

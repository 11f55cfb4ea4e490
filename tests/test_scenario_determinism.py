"""Every scenario replays byte for byte in a fresh process, under any PYTHONHASHSEED."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.scenario import find_scenarios, load_module

ROOT = Path(__file__).parent.parent
CASES = [
    (info.name, mode)
    for info in find_scenarios()
    if "native" in getattr(load_module(info.path), "ENGINES", ("native",))  # pysyncobj: its own test
    for mode in getattr(load_module(info.path), "MODES", ("embedded", "streaming"))
]


def trace_hash(name: str, mode: str, hash_seed: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "run", name, "--seed", "0", "--mode", mode, "--json"],
        env=dict(os.environ, PYTHONHASHSEED=hash_seed),
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    # A scenario that fails on purpose (FAILS_ON_PURPOSE) exits 1; it must still replay exactly.
    expected = 1 if getattr(load_module(find(name)), "FAILS_ON_PURPOSE", None) else 0
    assert completed.returncode == expected, completed.stderr
    return json.loads(completed.stdout)["trace_sha256"]


def find(name: str) -> Path:
    return next(info.path for info in find_scenarios() if info.name == name)


def test_every_scenario_is_covered():
    assert len({name for name, _ in CASES}) >= 9


@pytest.mark.parametrize(("name", "mode"), CASES, ids=[f"{n}.{m}" for n, m in CASES])
def test_scenario_trace_hash_is_the_same_in_two_processes(name, mode):
    assert trace_hash(name, mode, "1") == trace_hash(name, mode, "4242")

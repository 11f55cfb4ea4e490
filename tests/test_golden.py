"""Golden outputs: every scenario's narrated run, seed 0, compared byte for byte.

``scenarios/golden/NAME.MODE.txt`` is the exact standard output of
``raftsim run NAME --seed 0 --mode MODE`` without a terminal, for every
scenario and each mode it runs in. Like etcd raft's interaction tests, the
expected text doubles as teaching material, and after a deliberate change
it is regenerated rather than edited by hand::

    RAFTSIM_REWRITE=1 python -m pytest tests/test_golden.py

then review the change with ``git diff scenarios/golden``.
"""

from __future__ import annotations

import difflib
import io
import os

import pytest

from simulator.cli import main
from simulator.scenario import SCENARIO_DIR, find_scenarios, load_module, resolve

GOLDEN_DIR = SCENARIO_DIR / "golden"
REWRITE = os.environ.get("RAFTSIM_REWRITE") == "1"


def _cases() -> list[tuple[str, str]]:
    cases = []
    for info in find_scenarios():
        module = load_module(info.path)
        if "native" not in getattr(module, "ENGINES", ("native",)):
            continue  # pysyncobj-only scenarios: tests/test_pysyncobj_engine.py
        for mode in getattr(module, "MODES", ("embedded", "streaming")):
            cases.append((info.name, mode))
    return cases


CASES = _cases()


def golden_path(name: str, mode: str):
    return GOLDEN_DIR / f"{name}.{mode}.txt"


@pytest.mark.parametrize(("name", "mode"), CASES, ids=[f"{name}.{mode}" for name, mode in CASES])
def test_run_prints_its_golden_output(name: str, mode: str) -> None:
    out = io.StringIO()
    code = main(["run", name, "--seed", "0", "--mode", mode], out=out)
    printed = out.getvalue()
    path = golden_path(name, mode)
    if REWRITE:
        GOLDEN_DIR.mkdir(exist_ok=True)
        path.write_text(printed, encoding="utf-8")
    else:
        assert path.is_file(), f"no golden output {path}; create it with RAFTSIM_REWRITE=1"
        expected = path.read_text(encoding="utf-8")
        if printed != expected:
            diff = "".join(difflib.unified_diff(
                expected.splitlines(keepends=True), printed.splitlines(keepends=True),
                fromfile=str(path), tofile="this run",
            ))
            pytest.fail(f"output differs from {path.name} (if intended, rerun with "
                        f"RAFTSIM_REWRITE=1 and review the diff):\n{diff}")
    # A scenario that shows a broken assumption fails on purpose (FAILS_ON_PURPOSE): exit 1.
    expected_code = 1 if getattr(load_module(resolve(name).path), "FAILS_ON_PURPOSE", None) else 0
    assert code == expected_code, f"{name} in {mode} mode exited {code}:\n{printed}"


def test_every_golden_file_belongs_to_a_scenario_and_mode() -> None:
    expected = {golden_path(name, mode).name for name, mode in CASES}
    found = {path.name for path in GOLDEN_DIR.glob("*.txt")}
    assert found - expected == set(), "golden files for no scenario (renamed? delete them)"
    assert len(CASES) >= 15  # 9 scenarios: 6 run in both modes, 3 in streaming only

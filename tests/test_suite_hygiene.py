"""The suite's own promises: CI never rewrites goldens; the thorough profile really is thorough."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

PROBE = '''
import os

from hypothesis import given, settings, strategies as st


@settings(max_examples=7, database=None)
@given(st.integers())
def test_counts_its_examples(number):
    if "PROBE_FILE" in os.environ:  # another run that happens to collect this file counts nothing
        with open(os.environ["PROBE_FILE"], "a") as file:
            file.write("x")
'''


def test_ci_refuses_to_run_with_rewrite_set():
    result = subprocess.run(["bash", str(REPO_ROOT / ".ci" / "run")], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=60, env={**os.environ, "RAFTSIM_REWRITE": "1"})
    assert result.returncode == 2
    assert "refusing to run with RAFTSIM_REWRITE set" in result.stderr


def examples_run(tmp_path: Path, profile: str) -> int:
    probe = REPO_ROOT / "tests" / f"test_zz_probe_{os.getpid()}.py"
    counter = tmp_path / f"{profile}.count"
    probe.write_text(PROBE, encoding="utf-8")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", str(probe), "-q", "-p", "no:cacheprovider"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
            env={**os.environ, "RAFTSIM_HYPOTHESIS_PROFILE": profile, "PROBE_FILE": str(counter)},
        )
    finally:
        probe.unlink()
    assert result.returncode == 0, result.stdout + result.stderr
    return len(counter.read_text())


def test_the_thorough_profile_raises_a_tests_own_example_count(tmp_path):
    assert examples_run(tmp_path, "ci") == 7
    assert examples_run(tmp_path, "thorough") >= 70

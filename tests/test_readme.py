"""The README's Python example runs as written (documentation that cannot rot silently)."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

ROOT = Path(__file__).parent.parent
# An editable install made before the plugin existed lacks its entry point: then load it by name.
PLUGIN_OPTION = () if any(e.name == "raftsim" for e in entry_points(group="pytest11")) else (
    "-p", "simulator.testing.pytest_plugin")


def test_readme_python_example_runs_and_prints_a_trace_hash(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert blocks, "README.md should show a Python example"
    script = tmp_path / "example.py"
    script.write_text(blocks[0])
    completed = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT, check=True
    )
    last_line = completed.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"[0-9a-f]{64}", last_line)
    assert "fault=heal" in completed.stdout


def test_readme_own_state_machine_example_passes_under_pytest(tmp_path):
    """The "Test your own state machine" example is a test file: it must pass as written."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Test your own state machine", 1)[1]
    [block] = re.findall(r"```python\n(.*?)```", section.split("\n### ", 1)[0], re.S)
    (tmp_path / "test_counter.py").write_text(block)
    (tmp_path / "pytest.ini").write_text("[pytest]\ntrio_mode = true\n")
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
         *PLUGIN_OPTION, "test_counter.py"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]
    assert "2 passed" in completed.stdout
    # Under 20 lines of test code beside the machine itself, as the section promises to be short.
    assert len(block.split("def test_", 1)[1].splitlines()) < 20

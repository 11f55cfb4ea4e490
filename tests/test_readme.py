"""The README's Python example runs as written (documentation that cannot rot silently)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


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

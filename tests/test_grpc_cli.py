"""The README's "Real network" commands, run as written (ports and folders picked at run time)."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from test_grpc_harness import free_port

ROOT = Path(__file__).resolve().parent.parent
RAFTSIM = [sys.executable, "-m", "simulator.cli"]


def readme_commands() -> list[str]:
    section = (ROOT / "README.md").read_text().split("## Real network", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```bash\n(.*?)```", section, re.DOTALL)
    return [line for line in block.splitlines() if line.strip()]


def test_the_readme_starts_three_nodes_and_puts_and_gets_a_key(tmp_path):
    ports = {f"700{i}": str(free_port()) for i in (1, 2, 3)}
    variables, nodes = {}, []
    try:
        for line in readme_commands():
            if line.startswith("python -m pip install"):
                continue  # the test environment has the extra
            for old, new in ports.items():
                line = line.replace(old, new)
            name, sep, value = line.partition("=")
            if sep and name.isidentifier() and " " not in name:
                variables[name] = value
                continue
            for name, value in variables.items():
                line = line.replace(f"${name}", value)
            background = line.endswith("&")
            argv = shlex.split(line.rstrip("&"))
            assert argv[0] == "raftsim", line
            argv = RAFTSIM + [str(tmp_path / a) if a.startswith("data/") else a for a in argv[1:]]
            if background:
                nodes.append(subprocess.Popen(argv, cwd=tmp_path, stderr=subprocess.PIPE, text=True))
                continue
            result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=180)
            assert result.returncode == 0, result.stderr
            if argv[3:5] == ["kv", "put"]:
                assert re.fullmatch(r"ok \(entry \d+, leader [123]\)\n", result.stdout), result.stdout
            else:
                assert result.stdout == "hello\n"
        assert len(nodes) == 3
    finally:
        codes = []
        for node in nodes:
            node.send_signal(signal.SIGTERM)
            codes.append(node.wait(timeout=60))
    logs = [node.stderr.read() for node in nodes]
    assert codes == [0, 0, 0], logs
    assert all("Traceback" not in log and "role changed" in log for log in logs)

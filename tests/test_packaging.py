"""A plain install works: the wheel carries the scenarios, the plugin, the license and py.typed.

The test builds a wheel from a copy of this checkout (so the build leaves
nothing in the working tree), installs it with ``--no-deps`` into a fresh
venv that sees the system site-packages for the dependencies (quick, and
honest: the venv's own site-packages come first on ``sys.path``, and the
test checks that ``simulator`` and ``scenarios`` load from there, not from
the repository), then, from a folder outside the repository, runs
``raftsim list``, ``raftsim run node_join`` (compared with its golden
output), ``python -m simulator`` and a pytest session that uses the plugin
only through its installed ``pytest11`` entry point.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SKIPPED = shutil.ignore_patterns(".git", "__pycache__", "build", "dist", "*.egg-info", ".hypothesis",
                                 ".pytest_cache", "raftsim-failures", ".ipynb_checkpoints", "notebooks", "benchmarks")


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    completed = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, f"{' '.join(command)} failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-3000:]}"
    return completed


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(the wheel, the venv's python, a working folder outside the repository)."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    shutil.copytree(REPO_ROOT, source, ignore=SKIPPED)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root / "dist"),
         str(source)], cwd=root)
    [wheel] = list((root / "dist").glob("raftsim-*.whl"))
    run([sys.executable, "-m", "venv", "--system-site-packages", str(root / "venv")], cwd=root)
    python = root / "venv" / "bin" / "python"
    run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], cwd=root)
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    return wheel, python, elsewhere


def test_the_wheel_carries_scenarios_license_types_and_the_plugin(installed):
    wheel, _, _ = installed
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert {"scenarios/node_join.py", "scenarios/first_election.py", "simulator/py.typed",
            "transports/py.typed"} <= names
    assert any(name.endswith("licenses/LICENSE") for name in names)
    assert "License-Expression: Apache-2.0" in metadata
    assert "Classifier: Framework :: Trio" in metadata
    # What the plugin's fixtures and the search over a user's system need, as one extra.
    assert "Provides-Extra: testing" in metadata
    assert all(f"{name}>=" in metadata and f'extra == "testing"' in metadata for name in ("pytest-trio", "hypothesis"))
    assert "[pytest11]" in entry_points and "raftsim = simulator.testing.pytest_plugin" in entry_points


def test_raftsim_list_and_run_work_from_the_installed_wheel(installed):
    _, python, elsewhere = installed
    where = run([str(python), "-c", "import simulator, scenarios; print(simulator.__file__); print(scenarios.__file__)"],
                cwd=elsewhere).stdout.split()
    venv = python.parent.parent
    assert all(Path(path).is_relative_to(venv) for path in where), where
    raftsim = str(python.parent / "raftsim")
    listing = run([raftsim, "list"], cwd=elsewhere).stdout
    assert "node_join" in listing and "basic" in listing
    output = run([raftsim, "run", "node_join", "--seed", "0", "--mode", "streaming"], cwd=elsewhere).stdout
    golden = (REPO_ROOT / "scenarios" / "golden" / "node_join.streaming.txt").read_text(encoding="utf-8")
    assert output == golden
    assert "node_join" in run([str(python), "-m", "simulator", "list"], cwd=elsewhere).stdout
    run([str(python), "-m", "scenarios.first_election", "--help"], cwd=elsewhere)


def test_the_plugin_loads_from_its_entry_point(installed):
    _, python, elsewhere = installed
    (elsewhere / "pytest.ini").write_text("[pytest]\ntrio_mode = true\n")
    (elsewhere / "test_user.py").write_text(
        "async def test_cluster(raftsim_cluster):\n"
        "    assert await raftsim_cluster.wait_for_leader() in raftsim_cluster.node_ids\n"
    )
    result = run([str(python), "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", "test_user.py"],
                 cwd=elsewhere)
    assert "1 passed" in result.stdout


def test_the_notebooks_extra_carries_what_the_notebooks_import():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    declared = {requirement.split("[")[0].split(">")[0].split("=")[0].strip().lower()
                for requirement in project["dependencies"] + project["optional-dependencies"]["notebooks"]}
    # What the notebooks import, and what the simulator functions they call import in turn.
    needed = {"matplotlib", "pandas", "trio", "ipykernel", "nbclient", "hypothesis"}
    assert needed <= declared, needed - declared
    heavy_servers = {"moto", "gcp-storage-emulator"}
    for extra, requirements in project["optional-dependencies"].items():
        if extra not in ("test", "cloud-test-servers"):
            names = {r.split("[")[0].split(">")[0].strip().lower() for r in requirements}
            assert not names & heavy_servers, f"the {extra} extra pulls in test servers"

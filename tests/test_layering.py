"""Enforce the import rules between layers (DESIGN.md section 2).

Theory of operation: every ``.py`` file (and every code cell of every
``.ipynb``) under the layered folders is parsed with ``ast``, never imported,
so a broken or slow module cannot hide a violation. Each import is resolved to
an absolute module name (relative imports included) and judged by the rule of
the layer the file lives in:

    simulator/raft/       layer 0: stdlib + attrs, no I/O, clock, threads,
                          global random, trio, transports or rest of simulator
    simulator/snapshots/  layer 1: synchronous I/O; no trio, threads,
                          Raft messages, transports or rest of simulator
    transports/           layer 2: stdlib, trio, attrs, simulator.raft,
                          simulator.snapshots; not the rest of simulator
    simulator/ (rest)     layer 3, one subpackage per role, each importing only
                          the roles below it (ROLE_MAY_IMPORT):
                            checks    < observe < cluster < engines < scenario
                            machines  <           explore < testing  < cli
    scenarios/, notebooks/  users: the simulator and transports package roots
                          and simulator.testing only, plus stdlib/third-party

``from package import name`` counts as importing ``package.name`` when that is
a module in this repository, and ``package`` otherwise (a re-exported name).

Import circles: every import between modules of ``simulator`` and
``transports`` (those inside functions included: a deferred import is still a
dependency) is an edge of one graph; a strongly connected component of more
than one module is a circle, and fails the suite.
"""

from __future__ import annotations

import ast
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
LAYERED_FOLDERS = ("simulator", "transports", "scenarios", "notebooks")
MAX_MODULE_LINES = 600
STDLIB = frozenset(sys.stdlib_module_names)

# Layer 0 is sans-IO and deterministic: no files, sockets, clock, processes or threads.
RAFT_FORBIDDEN_STDLIB = frozenset({
    "time", "os", "io", "socket", "pathlib", "shutil", "tempfile", "subprocess",
    "threading", "asyncio", "multiprocessing", "concurrent", "select",
    "selectors", "ssl", "mmap", "glob", "fileinput", "secrets",
})
# Layer 1 does synchronous I/O from the node's own task (DESIGN.md section 5).
SNAPSHOTS_FORBIDDEN = frozenset({
    "trio", "anyio", "asyncio", "threading", "concurrent", "multiprocessing",
})
TRANSPORTS_THIRD_PARTY = frozenset({"trio", "attrs"})
# The network driver alone speaks gRPC; the simulator must run without it installed.
GRPC_THIRD_PARTY = frozenset({"grpc", "google"})
USER_FOLDERS = frozenset({"scenarios", "notebooks", "tests"})
PUBLIC_ENTRY_POINTS = frozenset({"simulator", "transports", "simulator.testing"})


@attrs.frozen
class SourceUnit:
    """One piece of parseable source: a module, or one notebook code cell."""

    path: str  # repository-relative, POSIX separators; decides the layer
    label: str  # what violation messages call it
    source: str


@attrs.frozen
class Import:
    module: str
    line: int


# ---------------------------------------------------------------- discovery


def _is_ignored(relative: Path) -> bool:
    return any(part.startswith(".") or part == "__pycache__" for part in relative.parts)


def _layered_files(suffix: str) -> list[str]:
    found = []
    for folder in LAYERED_FOLDERS:
        for file in (REPO_ROOT / folder).rglob(f"*{suffix}"):
            relative = file.relative_to(REPO_ROOT)
            if not _is_ignored(relative):
                found.append(relative.as_posix())
    return sorted(found)


def _module_name(path: str) -> tuple[str, bool]:
    """Return the dotted module name of ``path`` and whether it is a package."""
    parts = list(Path(path).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _repository_modules() -> frozenset[str]:
    modules = set()
    for path in _layered_files(".py"):
        name, _ = _module_name(path)
        parts = name.split(".")
        modules.update(".".join(parts[:end]) for end in range(1, len(parts) + 1))
    return frozenset(modules)


def _notebook_cells(path: str) -> Iterator[SourceUnit]:
    notebook = json.loads((REPO_ROOT / path).read_text(encoding="utf-8"))
    code_cells = (c for c in notebook.get("cells", []) if c.get("cell_type") == "code")
    for number, cell in enumerate(code_cells, start=1):
        source = cell.get("source", "")
        lines = ("".join(source) if isinstance(source, list) else source).splitlines()
        # IPython magics and shell escapes are not Python; blank them, keeping line numbers.
        kept = ["" if line.lstrip().startswith(("%", "!")) else line for line in lines]
        yield SourceUnit(path=path, label=f"{path} code cell {number}", source="\n".join(kept))


def _source_units() -> list[SourceUnit]:
    units = [
        SourceUnit(path=path, label=path, source=(REPO_ROOT / path).read_text(encoding="utf-8"))
        for path in _layered_files(".py")
    ]
    for path in _layered_files(".ipynb"):
        if path.startswith("notebooks/"):
            units.extend(_notebook_cells(path))
    return units


# ------------------------------------------------------------------ checker


def _imports(tree: ast.AST, path: str, known_modules: frozenset[str]) -> Iterator[Import]:
    module_name, is_package = _module_name(path)
    package_parts = module_name.split(".") if is_package else module_name.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                if node.level > len(package_parts):
                    raise ValueError(f"{path}:{node.lineno}: relative import beyond the top-level package")
                kept = package_parts[: len(package_parts) - (node.level - 1)]
                base = ".".join(kept + ([node.module] if node.module else []))
            targets = []
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.append(submodule if submodule in known_modules else base)
            for target in dict.fromkeys(targets):  # dedupe, keep order
                yield Import(target, node.lineno)


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _raft_rule(module: str) -> str | None:
    top = module.split(".")[0]
    if _within(module, "simulator.raft"):
        return None
    if top == "simulator":
        return "layer 0 must not import the rest of simulator, only simulator.raft itself"
    if top == "transports":
        return "layer 0 must not import transports (layer 2)"
    if top == "trio":
        return "layer 0 is sans-IO and must not import trio"
    if top in RAFT_FORBIDDEN_STDLIB:
        return f"layer 0 must not do I/O, read the clock or use threads ({top} is forbidden); time is ticks"
    if top in STDLIB or top == "attrs":
        return None
    return "layer 0 may import only the standard library and attrs"


def _snapshots_rule(module: str) -> str | None:
    top = module.split(".")[0]
    if _within(module, "simulator.snapshots"):
        return None
    if _within(module, "simulator.raft"):
        return "layer 1 knows nothing of Raft messages and must not import simulator.raft"
    if top == "simulator":
        return "layer 1 must not import the rest of simulator, only simulator.snapshots itself"
    if top == "transports":
        return "layer 1 must not import transports (layer 2)"
    if top in SNAPSHOTS_FORBIDDEN:
        return f"layer 1 does synchronous I/O only: no trio, async or threads ({top} is forbidden)"
    if top in USER_FOLDERS:
        return f"library code must not import {top}"
    return None


def _transports_rule(module: str) -> str | None:
    top = module.split(".")[0]
    if top == "transports" or _within(module, "simulator.raft") or _within(module, "simulator.snapshots"):
        return None
    if top in GRPC_THIRD_PARTY:
        return "only transports.grpc may import gRPC and protobuf (the simulator runs without them)"
    if top == "simulator":
        return "layer 2 may import simulator.raft and simulator.snapshots, not the rest of simulator (layer 3)"
    if top in STDLIB or top in TRANSPORTS_THIRD_PARTY:
        return None
    return "layer 2 may import only the standard library, trio, attrs, simulator.raft and simulator.snapshots"


# Layer 3 roles, and which other parts of simulator each may import. A role
# never imports one that uses it, so a newcomer can read them bottom-up.
_BASE = frozenset({"raft", "snapshots"})
ROLE_MAY_IMPORT: dict[str, frozenset[str]] = {
    "checks": frozenset({"raft"}),
    "machines": frozenset({"snapshots"}),
    "observe": _BASE | {"checks"},
    "cluster": _BASE | {"checks", "machines", "observe"},
    "engines": _BASE | {"checks", "machines", "observe", "cluster"},
    "scenario": _BASE | {"checks", "machines", "observe", "cluster", "engines"},
    "explore": _BASE | {"checks", "machines", "observe", "cluster", "engines", "scenario"},
    "testing": _BASE | {"checks", "machines", "observe", "cluster", "engines", "scenario", "explore"},
    # Scenarios on node processes over gRPC; imports transports.grpc lazily (the simulator runs without it).
    "realnet": _BASE | {"checks", "machines", "observe", "cluster", "engines", "scenario"},
    "cli": _BASE | {"checks", "machines", "observe", "cluster", "engines", "scenario", "explore", "testing",
                    "realnet", "_version"},
}
# The only roles that drive node processes over gRPC; the rest run without the grpc extra.
ROLES_ON_GRPC = frozenset({"realnet", "cli"})
# Roles that stay free of trio and the transports (the checks run under any driver).
ROLES_WITHOUT_TRANSPORTS = frozenset({"checks", "machines"})


def _role_of(path: str) -> str | None:
    parts = path.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "simulator" else None


def _grpc_rule(module: str) -> str | None:
    if module.split(".")[0] in GRPC_THIRD_PARTY:
        return None
    return _transports_rule(module)


def _runner_rule_for(role: str | None):
    def rule(module: str) -> str | None:
        parts = module.split(".")
        top = parts[0]
        if top in USER_FOLDERS:
            return f"library code must not import {top}"
        if top in GRPC_THIRD_PARTY:
            return "only transports.grpc may import gRPC and protobuf (the simulator runs without them)"
        if _within(module, "transports.grpc") and role not in ROLES_ON_GRPC:
            return f"only simulator.{{{', '.join(sorted(ROLES_ON_GRPC))}}} may use transports.grpc (the grpc extra)"
        if role is None or role not in ROLE_MAY_IMPORT:
            return None  # the package root and its entry points re-export everything
        if top == "transports" and role in ROLES_WITHOUT_TRANSPORTS:
            return f"simulator.{role} must not depend on the transports"
        if top != "simulator":
            return None
        if len(parts) == 1:
            return (f"simulator.{role} must not import the simulator package root (it re-exports "
                    "everything); import the module that defines the name")
        target = parts[1]
        if target == role or target in ROLE_MAY_IMPORT[role]:
            return None
        allowed = ", ".join(sorted(ROLE_MAY_IMPORT[role])) or "nothing"
        return f"simulator.{role} may import only simulator.{{{allowed}}}, not simulator.{target}"

    return rule


def _user_rule(module: str) -> str | None:
    top = module.split(".")[0]
    if top in {"simulator", "transports"} and module not in PUBLIC_ENTRY_POINTS:
        return (
            "scenarios and notebooks use the public API: import from the simulator or "
            "transports package root (or simulator.testing), not a submodule"
        )
    return None


def _rule_for(path: str):
    if path.startswith("simulator/raft/"):
        return _raft_rule
    if path.startswith("simulator/snapshots/"):
        return _snapshots_rule
    if path.startswith("simulator/"):
        return _runner_rule_for(_role_of(path))
    if path.startswith("transports/grpc/"):
        return _grpc_rule
    if path.startswith("transports/"):
        return _transports_rule
    if path.startswith(("scenarios/", "notebooks/")):
        return _user_rule
    raise ValueError(f"{path} is not in a layered folder; expected one of {LAYERED_FOLDERS}")


def _global_random_uses(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Yield (line, what) for every use of the global random generator."""
    module_aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            module_aliases.update(a.asname or a.name for a in node.names if a.name == "random")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "random":
            for alias in node.names:
                if alias.name != "Random":
                    yield node.lineno, f"from random import {alias.name}"
    allowed_names = set()  # ids of Name nodes used only as `random.Random`
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in module_aliases and node.attr == "Random":
                allowed_names.add(id(node.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in module_aliases and node.attr != "Random":
                allowed_names.add(id(node.value))  # reported here, not again below
                yield node.lineno, f"{node.value.id}.{node.attr}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in module_aliases and id(node) not in allowed_names:
            yield node.lineno, f"the module {node.id} itself"


def check_source(
    source: str,
    path: str,
    *,
    label: str | None = None,
    known_modules: frozenset[str] | None = None,
) -> list[str]:
    """Return one message per layering violation in ``source``, which lives at ``path``."""
    label = label or path
    if known_modules is None:
        known_modules = _repository_modules()
    try:
        tree = ast.parse(source, filename=label)
    except SyntaxError as error:
        return [f"{label}:{error.lineno}: cannot be parsed: {error.msg}"]
    rule = _rule_for(path)
    problems = []
    try:
        imports = list(_imports(tree, path, known_modules))
    except ValueError as error:
        return [f"{label}: {error}"]
    for imported in imports:
        reason = rule(imported.module)
        if reason:
            problems.append(f"{label}:{imported.line}: imports {imported.module}: {reason}")
    if rule is _raft_rule:
        for line, what in _global_random_uses(tree):
            problems.append(
                f"{label}:{line}: uses the global random generator ({what}); "
                "take a random.Random handed in instead"
            )
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open":
                problems.append(f"{label}:{node.lineno}: calls open(); layer 0 does no file I/O")
    return problems


# -------------------------------------------------------------------- tests

SOURCE_UNITS = _source_units()
REPOSITORY_MODULES = _repository_modules()
SIZED_MODULES = [path for path in _layered_files(".py") if path.startswith(("simulator/", "transports/"))]


@pytest.mark.parametrize("unit", SOURCE_UNITS, ids=[unit.label for unit in SOURCE_UNITS])
def test_imports_follow_the_layering_rules(unit: SourceUnit) -> None:
    problems = check_source(unit.source, unit.path, label=unit.label, known_modules=REPOSITORY_MODULES)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", SIZED_MODULES)
def test_module_is_small_enough(path: str) -> None:
    line_count = len((REPO_ROOT / path).read_text(encoding="utf-8").splitlines())
    assert line_count <= MAX_MODULE_LINES, (
        f"{path} has {line_count} lines, expected at most {MAX_MODULE_LINES}; split it by responsibility"
    )


def test_discovery_finds_the_files_that_always_exist() -> None:
    # Guards against a wrong REPO_ROOT or glob making every test above vacuous.
    labels = {unit.label for unit in SOURCE_UNITS}
    assert {"simulator/cli/main.py", "transports/__init__.py"} <= labels
    assert "simulator/cli/main.py" in SIZED_MODULES
    # Every layer-3 subpackage has a rule, so a new room cannot slip in unruled.
    rooms = {p.name for p in (REPO_ROOT / "simulator").iterdir() if (p / "__init__.py").is_file()}
    assert rooms - {"raft", "snapshots"} == set(ROLE_MAY_IMPORT) - {"_version"}, (
        "every subpackage of simulator needs a line in ROLE_MAY_IMPORT"
    )


# ------------------------------------------------------------------ circles


def import_graph(units: list[SourceUnit], known_modules: frozenset[str]) -> dict[str, set[str]]:
    """Module -> the repository modules it imports (deferred imports included)."""
    graph: dict[str, set[str]] = {}
    for unit in units:
        if not unit.path.startswith(("simulator/", "transports/")) or not unit.path.endswith(".py"):
            continue
        name, _ = _module_name(unit.path)
        edges = graph.setdefault(name, set())
        for imported in _imports(ast.parse(unit.source), unit.path, known_modules):
            if imported.module in known_modules and imported.module != name:
                edges.add(imported.module)
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    circles: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    circles.append(sorted(component))
    return circles


def test_no_import_circles_between_modules() -> None:
    circles = import_circles(import_graph(SOURCE_UNITS, REPOSITORY_MODULES))
    assert not circles, "import circles (modules that cannot be understood apart; merge them or " \
        "move the shared piece down):\n" + "\n".join(" <-> ".join(c) for c in circles)


def test_circle_finder_finds_a_deferred_circle() -> None:
    units = [
        SourceUnit("simulator/observe/a.py", "a", "from .b import x\n"),
        SourceUnit("simulator/observe/b.py", "b", "def f():\n    from .a import y\n"),
        SourceUnit("simulator/observe/c.py", "c", "from .a import z\n"),
    ]
    known = frozenset({"simulator", "simulator.observe", "simulator.observe.a", "simulator.observe.b",
                       "simulator.observe.c"})
    graph = import_graph(units, known)
    assert import_circles(graph) == [["simulator.observe.a", "simulator.observe.b"]]
    assert import_circles({"x": {"y"}, "y": {"z"}, "z": set()}) == []


RAFT = "simulator/raft/_node.py"
KNOWN = frozenset({"simulator", "simulator.raft", "simulator.raft._log", "simulator.testing", "simulator.cli"})


@pytest.mark.parametrize(
    ("path", "source"),
    [
        (RAFT, "import trio\n"),
        (RAFT, "import os.path\n"),
        (RAFT, "from time import monotonic\n"),
        (RAFT, "import random\nx = random.randint(1, 2)\n"),
        (RAFT, "import random as r\nrng = r\n"),
        (RAFT, "from random import choice\n"),
        (RAFT, "from ..snapshots import x\n"),
        (RAFT, "from .. import cli\n"),
        (RAFT, "import simulator\n"),
        (RAFT, "import numpy\n"),
        (RAFT, "data = open('f').read()\n"),
        ("simulator/snapshots/_disk.py", "from simulator.raft import Message\n"),
        ("simulator/snapshots/_disk.py", "import trio\n"),
        ("transports/_streaming.py", "from simulator import Cluster\n"),
        ("transports/_streaming.py", "from simulator.cli import main\n"),
        ("simulator/cluster/cluster.py", "import transports.grpc\n"),
        ("simulator/cluster/cluster.py", "from google.protobuf import message\n"),
        ("transports/_streaming.py", "import grpc\n"),
        ("scenarios/demo.py", "from simulator.raft import RawNode\n"),
        ("scenarios/demo.py", "from simulator import cli\n"),
        ("notebooks/demo.py", "import transports._streaming\n"),
        ("simulator/checks/monitor.py", "from ..cluster.cluster import Cluster\n"),
        ("simulator/checks/monitor.py", "import trio\nfrom transports import Streaming\n"),
        ("simulator/observe/trace.py", "from simulator.cluster.node import Tick\n"),
        ("simulator/cluster/node.py", "from ..explore.programs import Program\n"),
        ("simulator/cluster/node.py", "from simulator import Cluster\n"),
        ("simulator/scenario/runner.py", "from ..explore import programs\n"),
    ],
)
def test_checker_flags_violations(path: str, source: str) -> None:
    assert check_source(source, path, known_modules=KNOWN)


@pytest.mark.parametrize(
    ("path", "source"),
    [
        (RAFT, "from __future__ import annotations\nimport attrs\nimport enum\n"),
        (RAFT, "from random import Random\n"),
        (RAFT, "import random\ndef f(rng: random.Random) -> int:\n    return rng.randint(1, 2)\n"),
        (RAFT, "from . import _log\nfrom ._log import Entry\n"),
        ("simulator/raft/__init__.py", "from ._node import RawNode\n"),
        ("simulator/snapshots/_disk.py", "import os\nimport attrs\n"),
        ("transports/_streaming.py", "import trio\nfrom simulator.raft import RawNode\nfrom simulator import raft\n"),
        ("transports/grpc/server.py", "import grpc\nfrom google.protobuf import message\nimport trio\n"),
        ("simulator/cli/node.py", "from transports.grpc import node\n"),
        ("simulator/_cluster.py", "import trio\nimport transports\nfrom simulator.raft import RawNode\n"),
        ("simulator/cluster/node.py", "from ..checks.monitor import M\nfrom ..observe.trace import T\n"),
        ("simulator/explore/programs.py", "from ..cluster.client import C\nfrom ..scenario import run\n"),
        ("scenarios/demo.py", "import simulator\nfrom transports import Embedded\nfrom simulator.testing import H\n"),
        ("scenarios/demo.py", "from simulator import testing\nimport rich\n"),
    ],
)
def test_checker_allows_permitted_imports(path: str, source: str) -> None:
    assert check_source(source, path, known_modules=KNOWN) == []

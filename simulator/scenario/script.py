"""The scenario format: finding, loading and configuring scenario scripts.

A scenario is a Python file (``scenarios/NAME.py`` or any path) with:

- a module docstring: its first line is the one-line description ``raftsim
  list`` shows; the rest says what it shows and what to watch for;
- optionally ``CLUSTER = {...}``: keyword arguments for :meth:`Cluster.open`
  (``nodes``, ``link``, ``compaction``, ``tick_interval``...), which command
  line options override (``--nodes``, ``--mode``...);
- optionally ``PARAMS = {...}``: named parameters with defaults, set from the
  command line with ``--param key=value`` (values are parsed as ints, floats
  or sizes like ``4MiB`` when they look like one);
- optionally ``MODES = ("streaming",)`` when it is about one mode only (then
  it is also the default ``--mode``);
- optionally ``DEFAULTS = {"seed": 3, "mode": "streaming", "store": "disk"}``:
  what ``raftsim run`` uses when its command line does not say;
- optionally ``ENGINES = ("native", "pysyncobj")``: the Raft engines it runs
  on (default: native only; see :mod:`simulator.engines.scenario_support`);
- optionally ``DEFECTS = ("install_unverified",)``: deliberate bugs switched
  on for this run (:mod:`simulator.raft.defects`), to show that the checks
  catch them;
- optionally ``STREAMING = {...}``: ``Streaming`` options for streaming runs
  (``rate_limit``, ``idle_timeout``, ``chunks_in_flight``, a default
  ``chunk_size`` that ``--chunk-size`` overrides);
- ``async def scenario(sim)``: the story. ``sim.cluster`` is the open
  cluster, ``sim.params`` the parameters, ``sim.say(text)`` narrates,
  ``sim.check(condition, text)`` records the scenario's own checks.

:func:`run_scenario` opens the cluster with the chosen snapshot mode, runs
the story, and returns a :class:`ScenarioResult` that the CLI prints as text
or JSON. Scenarios import only from ``simulator`` and ``transports``.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import attrs

from ..raft import defects
from ..snapshots.urls import is_store_url

SCENARIO_DIR = Path(__file__).resolve().parent.parent.parent / "scenarios"

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|KB|MB|GB|k|K|M|G)?\s*$")
_UNITS = {
    None: 1, "B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3,
    "KB": 1000, "MB": 1000**2, "GB": 1000**3, "k": 1024, "K": 1024, "M": 1024**2, "G": 1024**3,
}


class ScenarioError(ValueError):
    """A scenario that cannot be found, loaded or configured; the message says why."""


def parse_size(text: str) -> int:
    """``512KiB`` -> 524288; ``4MiB``, ``1GiB``, ``1000`` (bytes)."""
    match = _SIZE.match(str(text))
    if match is None:
        raise ScenarioError(f"size {text!r} not understood; expected e.g. 512KiB, 4MiB, 1GiB or 1000")
    number, unit = match.groups()
    value = float(number) * _UNITS[unit]
    if value != int(value) or value <= 0:
        raise ScenarioError(f"size {text!r} must be a positive whole number of bytes")
    return int(value)


def _parse_value(text: str):
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    try:
        return parse_size(text)
    except ScenarioError:
        return text


@attrs.frozen
class ScenarioInfo:
    name: str
    path: Path
    description: str


def find_scenarios(directory: Path = SCENARIO_DIR) -> list[ScenarioInfo]:
    """Every scenario in ``directory`` (files defining ``async def scenario``), by name."""
    found = []
    for path in sorted(directory.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        if path.name.startswith("_") or "async def scenario(" not in text:
            continue
        found.append(ScenarioInfo(path.stem, path, _description(load_module(path))))
    return found


def _description(module: ModuleType) -> str:
    doc = (module.__doc__ or "").strip()
    return doc.splitlines()[0].rstrip(".") if doc else "(no description)"


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"raftsim_scenario_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ScenarioError(f"cannot load {path} as Python")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "scenario", None)):
        raise ScenarioError(f"{path} has no 'async def scenario(sim)'")
    return module


def resolve(name_or_path: str, directory: Path = SCENARIO_DIR) -> ScenarioInfo:
    """A scenario by name (from ``scenarios/``) or by path to a file."""
    path = Path(name_or_path)
    if path.suffix == ".py" or path.exists():
        if not path.is_file():
            raise ScenarioError(f"no scenario file {name_or_path!r}")
        return ScenarioInfo(path.stem, path, _description(load_module(path)))
    candidate = directory / f"{name_or_path}.py"
    if not candidate.is_file():
        names = ", ".join(info.name for info in find_scenarios(directory))
        raise ScenarioError(f"unknown scenario {name_or_path!r}; known: {names}")
    return ScenarioInfo(name_or_path, candidate, _description(load_module(candidate)))


@attrs.frozen
class RunOptions:
    """What the command line chose; ``None`` leaves the scenario's own default."""

    seed: int = 0
    mode: str = "embedded"
    chunk_size: int | None = None
    store: str = "memory"  # "memory", "disk", "disk:DIR", "s3://bucket/prefix" or "gs://bucket/prefix"
    pull: bool = False  # followers pull snapshots from a shared store (streaming)
    nodes: int | None = None
    params: tuple[tuple[str, str], ...] = ()
    realtime: bool = False
    engine: str = "native"  # or "pysyncobj": real pysyncobj nodes (simulator.engines)

    def __attrs_post_init__(self) -> None:
        if self.mode not in ("embedded", "streaming", "auto"):
            raise ScenarioError(f"mode must be embedded, streaming or auto, got {self.mode!r}")
        if not (self.store == "memory" or self.store == "disk" or self.store.startswith("disk:")
                or is_store_url(self.store)):
            raise ScenarioError(
                f"store must be memory, disk or disk:DIR, or s3://bucket/prefix or gs://bucket/prefix; "
                f"got {self.store!r}"
            )
        if self.pull and self.mode != "streaming":
            raise ScenarioError("--pull needs --mode streaming: followers pull what the leader would stream")
        if self.nodes is not None and self.nodes < 1:
            raise ScenarioError(f"--nodes must be >= 1, got {self.nodes}")



def scenario_params(module: ModuleType, options: RunOptions) -> dict:
    params = dict(getattr(module, "PARAMS", {}))
    for key, value in options.params:
        if key not in params:
            known = ", ".join(sorted(params)) or "none"
            raise ScenarioError(f"scenario has no parameter {key!r}; its parameters: {known}")
        params[key] = _parse_value(value)
    return params


def scenario_defaults(info: ScenarioInfo) -> dict:
    """What ``raftsim run`` uses for options its command line leaves out.

    A scenario's ``DEFAULTS = {"seed": 3, "mode": "streaming", "store": "disk"}``
    (a counterexample file pins the run that failed this way); otherwise seed 0,
    the memory store, and embedded mode, or the scenario's only mode.
    """
    module = load_module(info.path)
    modes = getattr(module, "MODES", ("embedded", "streaming"))
    defaults = {"seed": 0, "store": "memory", "mode": "embedded" if "embedded" in modes else modes[0]}
    chosen = dict(getattr(module, "DEFAULTS", {}))
    unknown = sorted(set(chosen) - defaults.keys())
    if unknown:
        raise ScenarioError(f"DEFAULTS may set seed, mode and store only, got {unknown[0]!r}")
    return {**defaults, **chosen}


def scenario_defects(module: ModuleType) -> tuple[str, ...]:
    """The deliberate bugs a scenario switches on (``DEFECTS``; see ``simulator.raft.defects``)."""
    names = tuple(getattr(module, "DEFECTS", ()))
    for name in names:
        if name not in defects.DEFECTS:
            known = ", ".join(sorted(defects.DEFECTS))
            raise ScenarioError(f"scenario switches on unknown defect {name!r}; known defects: {known}")
    return names


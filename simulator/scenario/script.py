"""The scenario format: finding, loading and configuring scenario scripts.

A scenario is a Python file (``scenarios/NAME.py`` or any path) with:

- a module docstring: its first line is the one-line description ``raftsim
  list`` shows; the rest says what it shows and what to watch for;
- optionally ``CLUSTER = {...}``: keyword arguments for :meth:`Cluster.open`
  (``nodes``, ``link``, ``compaction``, ``tick_interval``...), which command
  line options override (``--nodes``, ``--mode``...);
- optionally ``PARAMS = {...}``: named parameters with defaults, set from the
  command line with ``--param key=value``; a value takes the type of its
  default (sizes like ``4MiB`` for whole numbers), plain numbers may not be
  negative, and ``Param(3, minimum=1)`` declares a range or choices
  (:mod:`simulator.scenario.params`);
- optionally ``MODES = ("streaming",)`` when it is about one mode only (then
  it is also the default ``--mode``);
- optionally ``DEFAULTS = {"seed": 3, "mode": "streaming", "store": "disk"}``:
  what ``raftsim run`` uses when its command line does not say;
- optionally ``ENGINES = ("native", "pysyncobj")``: the Raft engines it runs
  on (default: native only; see :mod:`simulator.engines.scenario_support`);
- optionally ``FAILS_ON_PURPOSE = "why"``: the scenario shows a bug or a
  broken assumption, so its default run fails (exit 1); ``raftsim list``
  says so, with the reason (how to avoid it);
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

from transports.policies import POLICIES

from ..raft import defects
from ..snapshots.urls import is_store_url, parse_store_url
from .params import Param, ParamError, declared

SCENARIO_DIR = Path(__file__).resolve().parent.parent.parent / "scenarios"

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|KB|MB|GB|k|K|M|G)?\s*$")
_UNITS = {
    None: 1, "B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3,
    "KB": 1000, "MB": 1000**2, "GB": 1000**3, "k": 1024, "K": 1024, "M": 1024**2, "G": 1024**3,
}


class ScenarioError(ValueError):
    """A scenario that cannot be found, loaded or configured; the message says why."""


class ScenarioCrash(Exception):
    """The scenario's own code raised (at import or in its story): the message
    names the file and line and what was raised; the run failed (exit 1)."""

    @classmethod
    def of(cls, error: BaseException, path: Path) -> ScenarioCrash | None:
        """``error`` told at the last line of ``path`` it passed through; ``None``
        if it never passed through the scenario's file (then it is not the scenario's)."""
        target = Path(path).resolve()
        if isinstance(error, SyntaxError) and error.filename and Path(error.filename).resolve() == target:
            return cls(f"{path}:{error.lineno}: syntax error: {error.msg}")
        line = None
        frame = error.__traceback__
        while frame is not None:
            if Path(frame.tb_frame.f_code.co_filename).resolve() == target:
                line = frame.tb_lineno
            frame = frame.tb_next
        if line is None:
            return None
        text = str(error).splitlines()[0] if str(error) else ""
        return cls(f"{path}:{line}: {type(error).__name__}" + (f": {text}" if text else ""))


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
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # a scenario file is code: its own errors are told as such
        crash = ScenarioCrash.of(error, path)
        if crash is None:
            raise
        raise crash from error
    if not callable(getattr(module, "scenario", None)):
        raise ScenarioError(f"{path} has no 'async def scenario(sim)'")
    return module


def resolve(name_or_path: str, directory: Path = SCENARIO_DIR) -> ScenarioInfo:
    """A scenario by name (from ``scenarios/``) or by path to a file.

    A bare name (no ``.py``, no folder separator) is a built-in scenario
    first: a folder that happens to have that name in the current directory
    does not shadow it. Anything that looks like a path is a path.
    """
    path = Path(name_or_path)
    looks_like_path = path.suffix == ".py" or "/" in name_or_path or "\\" in name_or_path
    candidate = directory / f"{name_or_path}.py"
    if not looks_like_path and candidate.is_file():
        return ScenarioInfo(name_or_path, candidate, _description(load_module(candidate)))
    if looks_like_path or path.is_file():
        if not path.is_file():
            raise ScenarioError(f"no scenario file {name_or_path!r}")
        return ScenarioInfo(path.stem, path, _description(load_module(path)))
    names = ", ".join(info.name for info in find_scenarios(directory))
    raise ScenarioError(f"unknown scenario {name_or_path!r}; known: {names}")


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
    # A story that never ends must not run (and grow its trace) forever: limits on
    # virtual time (the story fails with this reason) and on wall time (a guard).
    # A real system's snapshot policy (transports.policies) instead of mode/chunk options.
    policy: str | None = None
    max_virtual_seconds: float = 600.0
    max_wall_seconds: float | None = 1800.0

    def __attrs_post_init__(self) -> None:
        if self.mode not in ("embedded", "streaming", "auto"):
            raise ScenarioError(f"mode must be embedded, streaming or auto, got {self.mode!r}")
        if not (self.store == "memory" or self.store == "disk" or self.store.startswith("disk:")
                or is_store_url(self.store)):
            raise ScenarioError(
                f"store must be memory, disk or disk:DIR, or s3://bucket/prefix or gs://bucket/prefix; "
                f"got {self.store!r}"
            )
        if self.policy is not None and self.policy not in POLICIES:
            raise ScenarioError(f"unknown snapshot policy {self.policy!r}; expected one of {', '.join(POLICIES)}")
        if self.store == "disk:":
            raise ScenarioError("--store disk: names no folder; expected disk:DIR (or disk for a temporary one)")
        if is_store_url(self.store):
            try:
                parse_store_url(self.store)
            except ValueError as error:
                raise ScenarioError(f"--store: {error}") from None
        if self.pull and self.mode != "streaming":
            raise ScenarioError("--pull needs --mode streaming: followers pull what the leader would stream")
        if self.nodes is not None and self.nodes < 1:
            raise ScenarioError(f"--nodes must be >= 1, got {self.nodes}")
        if not self.max_virtual_seconds > 0:
            raise ScenarioError(f"--max-virtual-seconds must be > 0, got {self.max_virtual_seconds}")
        if self.max_wall_seconds is not None and not self.max_wall_seconds > 0:
            raise ScenarioError(f"--max-wall-seconds must be > 0, got {self.max_wall_seconds}")

    @property
    def store_dir(self) -> Path | None:
        """The folder of ``--store disk:DIR``, if one was named."""
        return Path(self.store[5:]) if self.store.startswith("disk:") else None


def check_store_dir(folder: Path) -> None:
    """Refuse a ``--store disk:DIR`` the run cannot start clean in, before it starts.

    A folder that already holds files would hand this run the last run's
    snapshots (a different result, or a refused save), as a used ``s3://``
    prefix would; so it must be new or empty.
    """
    if folder.exists() and not folder.is_dir():
        raise ScenarioError(f"--store disk:{folder} is not a folder; expected a new or empty folder")
    if folder.is_dir():
        try:
            if any(folder.iterdir()):
                raise ScenarioError(f"--store disk:{folder} is not empty; a run starts from an empty store, so "
                                    f"expected a new or empty folder (remove its contents, or name another)")
        except OSError as error:
            raise ScenarioError(f"--store disk:{folder} cannot be read: {error.strerror}") from None
        return
    try:
        folder.mkdir(parents=True)
    except OSError as error:
        raise ScenarioError(f"--store disk:{folder} cannot be created: {error.strerror}; "
                            f"expected a new or empty folder you can write to") from None



def scenario_params(module: ModuleType, options: RunOptions) -> dict:
    params = dict(getattr(module, "PARAMS", {}))
    for key, value in options.params:
        if key not in params:
            known = ", ".join(sorted(params)) or "none"
            raise ScenarioError(f"scenario has no parameter {key!r}; its parameters: {known}")
        try:
            params[key] = declared(params[key]).parse(key, value, parse_size)
        except ParamError as error:
            raise ScenarioError(str(error)) from None
    # The story sees plain values; a Param's default stands for itself.
    return {key: value.default if isinstance(value, Param) else value for key, value in params.items()}


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


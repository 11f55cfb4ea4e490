"""Scenario scripts: the format (``script``), the story's handle (``sim``),
running one on either engine (``runner``, ``engines``) and its summary."""

from .runner import RunLimitError, ScenarioResult, run_scenario
from .script import (
    SCENARIO_DIR,
    RunOptions,
    ScenarioCrash,
    ScenarioError,
    ScenarioInfo,
    check_store_dir,
    find_scenarios,
    load_module,
    parse_size,
    resolve,
    scenario_defaults,
    scenario_defects,
    scenario_params,
)
from .sim import Sim
from .summary import run_summary, summarize

__all__ = [
    "SCENARIO_DIR", "RunLimitError", "RunOptions", "ScenarioCrash", "ScenarioError", "check_store_dir", "ScenarioInfo", "ScenarioResult", "Sim",
    "find_scenarios", "load_module", "parse_size", "resolve", "run_scenario", "run_summary",
    "scenario_defaults", "scenario_defects", "scenario_params", "summarize",
]

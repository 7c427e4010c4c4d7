"""Scenario files: loading, validation, matrix expansion and the plans both runners execute."""

from sipharness.scenario.loader import find_scenario_files, load_scenario, schema
from sipharness.scenario.model import Scenario, Step
from sipharness.scenario.plan import Plan, expand, skip_reason
from sipharness.scenario.source import ScenarioError, ScenarioProblem
from sipharness.scenario.variables import Bindings, Template

__all__ = [
    "Bindings",
    "Plan",
    "Scenario",
    "ScenarioError",
    "ScenarioProblem",
    "Step",
    "Template",
    "expand",
    "find_scenario_files",
    "load_scenario",
    "schema",
    "skip_reason",
]

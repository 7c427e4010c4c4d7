"""Plans: one matrix case of a scenario, ready for a runner to execute step by step."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from sipharness.scenario.model import Scenario, Step
from sipharness.scenario.variables import Bindings


@dataclass(frozen=True)
class Plan:
    """One case of a scenario: its matrix values, transport and steps.

    Step text stays as Templates; a runner makes one ``bindings(...)`` per call it places
    and renders each template when the step runs (``${saved.X}`` only exists by then).
    """

    scenario: Scenario
    case_id: str
    matrix: Mapping[str, str]
    transport: str

    @property
    def steps(self) -> tuple[Step, ...]:
        return self.scenario.steps

    @property
    def name(self) -> str:
        """``scenarios/x.yaml[header_case=lower-transport=udp]`` (no brackets without a matrix)."""
        return f"{self.scenario.path}[{self.case_id}]" if self.case_id else self.scenario.path

    def bindings(
        self,
        *,
        target_host: str,
        target_port: int,
        room_code: str,
        username: str = "",
        password: str = "",
    ) -> Bindings:
        """Fresh variable values for one run of this plan against a target."""
        return Bindings(
            target_host=target_host,
            target_port=target_port,
            transport=self.transport,
            room_code=room_code,
            username=username,
            password=password,
            matrix=self.matrix,
            variables=self.scenario.variables,
        )


def case_id(values: Mapping[str, str]) -> str:
    """``{"header_case": "lower", "transport": "udp"}`` -> ``header_case=lower-transport=udp``."""
    return "-".join(f"{axis}={value}" for axis, value in values.items())


def expand(scenario: Scenario) -> list[Plan]:
    """Every combination of the matrix axes, in file order (one plan without a matrix).

    A ``transport`` axis sets each case's transport; otherwise the scenario's applies.
    """
    axes = list(scenario.matrix)
    plans = []
    for combo in itertools.product(*(scenario.matrix[a] for a in axes)):
        values = dict(zip(axes, combo, strict=True))
        plans.append(
            Plan(scenario, case_id(values), values, values.get("transport", scenario.transport))
        )
    return plans


def skip_reason(scenario: Scenario, target_features: Collection[str]) -> str | None:
    """Why ``scenario`` cannot apply to a target offering ``target_features``, or None.

    ``auth`` is met by ``auth_401`` or ``auth_407``.
    """
    features = set(target_features)
    if features & {"auth_401", "auth_407"}:
        features.add("auth")
    missing = [r for r in scenario.requires if r not in features]
    if not missing:
        return None
    return f"the target does not offer {', '.join(missing)} (requires: in {scenario.path})"

"""Target profiles: what a SIP target offers, so scenarios that cannot apply there are skipped.

A profile is a YAML file (``fixtures/profiles/NAME.yaml``, or any path) with ``name``,
``description``, ``features`` (the ``requires:`` names it meets), optionally ``checks`` (only
these CHECKLIST ids apply; a scenario checking any other is skipped), ``known_deviations``
(check id -> why this target is known to break it; scenarios checking it are skipped) and,
for the mock bridge, ``bridge`` (overrides of fixtures/bridge.yaml the runner starts it with).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sipharness.scenario.checklist import CHECKS
from sipharness.scenario.loader import requirement_names
from sipharness.scenario.model import Scenario
from sipharness.scenario.plan import skip_reason as requirement_skip_reason

PROFILE_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "profiles"
DEFAULT_PROFILE = "mock"


class ProfileError(ValueError):
    """A profile that cannot be found or read; the message names the file and field."""


@dataclass(frozen=True)
class TargetProfile:
    """What a target offers and which checks apply to it."""

    name: str
    description: str
    features: frozenset[str]
    checks: frozenset[str] | None = None
    known_deviations: Mapping[str, str] = field(default_factory=dict)
    bridge: Mapping[str, Any] = field(default_factory=dict)
    path: str = ""

    def skip_reason(self, scenario: Scenario) -> str | None:
        """Why ``scenario`` cannot apply to this target, or None when it applies."""
        reason = requirement_skip_reason(scenario, self.features)
        if reason is not None:
            return f"target profile {self.name!r}: {reason}"
        if self.checks is not None:
            foreign = [c for c in scenario.checks if c not in self.checks]
            if foreign:
                return (f"target profile {self.name!r} is not held to {', '.join(foreign)} "
                        f"(it applies only {', '.join(sorted(self.checks))})")
        deviations = [f"{c}: {self.known_deviations[c]}" for c in scenario.checks
                      if c in self.known_deviations]
        if deviations:
            return f"target profile {self.name!r} is known to deviate: {'; '.join(deviations)}"
        return None


def profile_path(name_or_path: str) -> Path:
    """The file of a profile given by name (``mock``) or path (``my/target.yaml``)."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.parent != Path("."):
        return candidate
    return PROFILE_DIR / f"{name_or_path}.yaml"


def _string_list(data: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProfileError(f"{where}: {key}: expected a list of names")
    return list(value)


def load_profile(name_or_path: str) -> TargetProfile:
    """Read and check a profile; raise ProfileError naming the file and field on problems."""
    path = profile_path(name_or_path)
    known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"no target profile {name_or_path!r} ({path} does not exist; "
                           f"known: {known})") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(f"{path}: cannot read: {exc}") from None
    where = str(path)
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: expected a mapping with name, description, features")
    unknown_keys = set(data) - {"name", "description", "features", "checks", "known_deviations",
                                "bridge"}
    if unknown_keys:
        raise ProfileError(f"{where}: {sorted(unknown_keys)[0]}: unknown field")
    features = _string_list(data, "features", where)
    valid = set(requirement_names())
    for feature in features:
        if feature not in valid:
            raise ProfileError(f"{where}: features: unknown feature {feature!r} "
                               f"(known: {', '.join(sorted(valid))})")
    checks = _string_list(data, "checks", where) if "checks" in data else None
    deviations = data.get("known_deviations") or {}
    if not isinstance(deviations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in deviations.items()):
        raise ProfileError(f"{where}: known_deviations: expected check id: reason")
    for check in [*(checks or []), *deviations]:
        if check not in CHECKS:
            raise ProfileError(f"{where}: unknown check id {check!r} (see CHECKLIST.md)")
    bridge = data.get("bridge") or {}
    if not isinstance(bridge, dict):
        raise ProfileError(f"{where}: bridge: expected a mapping of mock bridge settings")
    return TargetProfile(
        name=str(data.get("name") or path.stem),
        description=str(data.get("description", "")),
        features=frozenset(features),
        checks=frozenset(checks) if checks is not None else None,
        known_deviations=dict(deviations),
        bridge=bridge,
        path=where,
    )

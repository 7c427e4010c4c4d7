"""The JSON Schema is valid Draft 2020-12, is the one in scenarios/, and accepts the examples."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from sipharness.scenario import schema
from sipharness.scenario.loader import requirement_names

REPO = Path(__file__).resolve().parents[2]


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_scenarios_dir_offers_the_same_schema_to_editors() -> None:
    assert json.loads((REPO / "scenarios/schema.json").read_text()) == schema()


@pytest.mark.parametrize("path", sorted((REPO / "scenarios").rglob("*.yaml")), ids=lambda p: p.stem)
def test_schema_accepts_the_examples(path: Path) -> None:
    jsonschema.Draft202012Validator(schema()).validate(yaml.safe_load(path.read_text()))


def test_schema_rejects_what_the_loader_rejects() -> None:
    bad = {"title": "t", "checks": ["TXN-01"], "steps": [{"expect": {"status": "20O"}}]}
    assert not jsonschema.Draft202012Validator(schema()).is_valid(bad)


def test_requirements_come_from_the_schema() -> None:
    assert {"webhooks", "roster", "auth_401"} <= set(requirement_names())

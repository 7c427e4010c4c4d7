"""The first scenario scenarios/README.md shows passes against the mock bridge, run the way
`./run conformance` runs scenario files (pytest with the sipharness plugin)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "scenarios" / "README.md"
HEADING = "## A first scenario"
pytestmark = pytest.mark.integration


def first_scenario() -> tuple[int, str]:
    """(README line of the opening fence, text) of the yaml block under HEADING."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = next(n for n in range(lines.index(HEADING), len(lines)) if lines[n] == "```yaml")
    end = lines.index("```", start + 1)
    return start + 1, "\n".join(lines[start + 1:end]) + "\n"


def test_the_first_scenario_passes_against_the_mock_bridge(
        run_scenario_files: Callable[[Mapping[str, str]], tuple[int, str]]) -> None:
    line, text = first_scenario()
    status, out = run_scenario_files({f"readme/readme_line_{line}.yaml": text})
    assert status == 0 and "1 passed" in out, (
        f"the example at scenarios/README.md:{line} did not pass against the mock bridge:\n"
        f"{out}")

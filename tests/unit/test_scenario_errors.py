"""Broken scenario files fail with file:line:col: field: problem (cases in scenario_cases/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipharness.scenario import ScenarioError, load_scenario

CASES = Path(__file__).parent / "scenario_cases"


def expected_problems(path: Path) -> list[str]:
    """The ``# expect: LINE:COL: FIELD: MESSAGE`` comments at the top of a case file."""
    return [
        line.removeprefix("# expect: ")
        for line in path.read_text().splitlines()
        if line.startswith("# expect: ")
    ]


@pytest.mark.parametrize("case", sorted(CASES.glob("*.yaml")), ids=lambda p: p.stem)
def test_broken_file_reports_where_and_what(case: Path) -> None:
    expected = expected_problems(case)
    assert expected, f"{case.name} has no '# expect:' line"
    with pytest.raises(ScenarioError) as excinfo:
        load_scenario(case, display=f"cases/{case.name}")
    reported = [str(p) for p in excinfo.value.problems]
    for want in expected:
        prefix = f"cases/{case.name}:{want}"
        assert any(r.startswith(prefix) for r in reported), (
            f"expected a problem starting {prefix!r}, got:\n" + "\n".join(reported)
        )


def test_error_message_lists_every_problem_one_per_line() -> None:
    with pytest.raises(ScenarioError) as excinfo:
        load_scenario(CASES / "ack_withheld_after_sent.yaml", display="x.yaml")
    lines = str(excinfo.value).splitlines()
    assert lines == [str(p) for p in excinfo.value.problems]
    assert len(lines) == 2


def test_empty_and_non_mapping_files_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here\n")
    with pytest.raises(ScenarioError, match=r"empty\.yaml:1:1: the file is empty"):
        load_scenario(empty)
    listing = tmp_path / "list.yaml"
    listing.write_text("- send: {method: INVITE}\n")
    expected = r"list\.yaml:1:1: expected a mapping with title, checks and steps, got a list"
    with pytest.raises(ScenarioError, match=expected):
        load_scenario(listing)


def test_unreadable_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")

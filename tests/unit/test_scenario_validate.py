"""``sipharness validate``: OK lines, located problems, exit status, check coverage."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sipharness.cli import main
from sipharness.scenario.checklist import CHECKS

REPO = Path(__file__).resolve().parents[2]
# Fixed copies of the format's examples: the catalogue in scenarios/ may change freely.
SAMPLES = Path(__file__).parent / "scenario_examples"
CASES = Path(__file__).parent / "scenario_cases"


def test_valid_scenarios_print_ok_with_case_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SAMPLES)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"OK  {SAMPLES / 'auth/wrong_credentials.yaml'} (5 cases)" in out
    assert f"OK  {SAMPLES / 'invite/answered_call.yaml'} (1 case)" in out


def test_broken_file_prints_located_problems_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.yaml"
    shutil.copy(SAMPLES / "dialog/cancel_and_timers.yaml", good)
    bad = tmp_path / "bad.yaml"
    shutil.copy(CASES / "bad_status.yaml", bad)
    assert main(["validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}:10:15: steps[2].expect.status: expected an integer 100-699" in out
    assert f"OK  {good} (1 case)" in out


def test_missing_path_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope")]) == 1
    assert "no such file or directory" in capsys.readouterr().out


def test_list_checks_shows_coverage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(SAMPLES / "auth/wrong_credentials.yaml", tmp_path / "one.yaml")
    assert main(["validate", "--list-checks", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any(line.split()[:2] == ["1", "AUTH-07"] for line in out)
    assert any(line.split()[:2] == ["-", "TXN-02"] for line in out)
    assert out[-1] == f"4 of {len(CHECKS)} CHECKLIST ids covered"

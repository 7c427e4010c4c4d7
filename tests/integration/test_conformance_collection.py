"""Scenario files become pytest tests: names, markers, and collection errors that point at
the file, line and field of a broken scenario."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

BROKEN = """\
title: A scenario with a status that is not a number
description: used by the collection-error test
checks: [AUTH-01]
tags: [auth]
severity: normal
steps:
  - send: {method: INVITE}
  - expect: {status: abc}
"""

GOOD = """\
title: Options answered
description: a valid scenario beside the broken one
checks: [DLG-08]
tags: [dialog, smoke-test]
severity: minor
matrix:
  case: [one, two]
steps:
  - options: {headers: [[X-Case, "${matrix.case}"]]}
  - expect: {status: 200}
"""


def pytest_run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "scenarios" / "dialog").mkdir(parents=True)
    (tmp_path / "conformance").mkdir()
    shutil.copy(ROOT / "scenarios" / "schema.json", tmp_path / "scenarios" / "schema.json")
    (tmp_path / "scenarios" / "dialog" / "options.yaml").write_text(GOOD)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\naddopts = "--strict-markers"\n')
    return tmp_path


def test_a_broken_scenario_is_a_collection_error_naming_file_line_and_field(
        project: Path) -> None:
    (project / "scenarios" / "dialog" / "broken.yaml").write_text(BROKEN)
    done = pytest_run(project, "conformance", "--collect-only", "-q")
    assert done.returncode == 2, done.stdout
    assert "scenarios/dialog/broken.yaml:8:" in done.stdout
    assert "steps[1].expect.status" in done.stdout
    assert '"abc"' in done.stdout


def test_each_matrix_case_is_a_test_selectable_by_tag_check_and_name(project: Path) -> None:
    listed = pytest_run(project, "conformance", "--collect-only", "-q")
    assert listed.returncode == 0, listed.stdout
    assert "scenarios/dialog/options.yaml::options[case=one]" in listed.stdout
    assert "scenarios/dialog/options.yaml::options[case=two]" in listed.stdout
    by_check = pytest_run(project, "conformance", "--collect-only", "-q", "-m", "check_DLG_08")
    assert "2 tests collected" in by_check.stdout, by_check.stdout
    by_tag = pytest_run(project, "conformance", "--collect-only", "-q", "-m", "smoke_test")
    assert "2 tests collected" in by_tag.stdout, by_tag.stdout
    other_check = pytest_run(project, "conformance", "--collect-only", "-q", "-m",
                             "check_AUTH_01")
    assert "no tests collected" in other_check.stdout or "0 tests" in other_check.stdout
    by_name = pytest_run(project, "scenarios/dialog/options.yaml", "--collect-only", "-q",
                         "-k", "two")
    assert "1/2 tests collected" in by_name.stdout, by_name.stdout


def test_yaml_files_outside_a_scenarios_folder_are_left_alone(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "options.yaml").write_text(BROKEN)
    done = pytest_run(tmp_path, "data", "--collect-only", "-q")
    assert done.returncode == 5, done.stdout


def test_a_profile_skips_what_the_target_does_not_offer(project: Path) -> None:
    (project / "scenarios" / "dialog" / "options.yaml").write_text(
        GOOD.replace("severity: minor", "severity: minor\nrequires: [webhooks]"))
    done = pytest_run(project, "conformance", "-q", "-rs", "--sip-target=127.0.0.1:9",
                      "--target-profile=100ms")
    assert done.returncode == 0, done.stdout
    assert "2 skipped" in done.stdout
    assert "target profile '100ms': the target does not offer webhooks" in done.stdout

"""The first scenario scenarios/README.md shows passes against the mock bridge, run the way
`./run conformance` runs scenario files (pytest with the sipharness plugin)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
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


def test_the_first_scenario_passes_against_the_mock_bridge(tmp_path: Path) -> None:
    line, text = first_scenario()
    folder = tmp_path / "scenarios" / "readme"
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "scenarios" / "schema.json", tmp_path / "scenarios" / "schema.json")
    (folder / f"readme_line_{line}.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\naddopts = "--strict-markers"\n')
    # Its own session, so that a run that hangs goes down with the mock bridge it started.
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "scenarios", "-q", "-rA"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate()
    assert run.returncode == 0 and "1 passed" in out, (
        f"the example at scenarios/README.md:{line} did not pass against the mock bridge:\n"
        f"{out}\n{err}")

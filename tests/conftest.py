"""Fixtures for sipharness's own tests: external tools and free loopback ports."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

# Importing locust monkey-patches the whole process with gevent (threads, ssl, select), which
# would change what every later test in this pytest process runs on (scapy's sniffer thread,
# ssl contexts). Unit tests import sipharness.load only to test its parts, so load locust here
# once without the patch; real Locust runs are subprocesses and do not inherit the variable.
os.environ["LOCUST_SKIP_MONKEY_PATCH"] = "1"
try:
    import locust  # noqa: F401
finally:
    del os.environ["LOCUST_SKIP_MONKEY_PATCH"]

from sipharness.hostenv import free_port, missing_tool_reason, tools_required
from sipharness.report.redact import forget_secrets


def tool_path(name: str) -> str:
    """Return the path of an external tool, or skip (fail under CI) when it is missing."""
    import shutil

    reason = missing_tool_reason(name)
    if reason is not None:
        if tools_required():
            pytest.fail(f"SIPHARNESS_REQUIRE_TOOLS=1 and {reason}")
        pytest.skip(reason)
    path = shutil.which(name)
    assert path is not None
    return path


@pytest.fixture
def require_tool() -> Callable[[str], str]:
    """``require_tool("sipp")`` returns the tool's path or skips (fails under CI)."""
    return tool_path


@pytest.fixture
def loopback_port() -> int:
    """A port on 127.0.0.1 free for both UDP and TCP."""
    return free_port()


@pytest.fixture(autouse=True)
def _secrets_do_not_leak_between_tests() -> Iterator[None]:
    """A password one test registers for redaction must not redact the next test's text."""
    yield
    forget_secrets()


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def run_scenario_files(tmp_path: Path) -> Callable[[Mapping[str, str]], tuple[int, str]]:
    """Run scenario files (path under scenarios/ -> YAML text) the way `./run conformance`
    does: pytest with the sipharness plugin, against the mock bridge it starts, in a project
    of their own. Returns (exit status, output). The run has its own session, so one that
    hangs goes down with the bridge it started."""

    def run(files: Mapping[str, str]) -> tuple[int, str]:
        folder = tmp_path / "scenarios"
        for name, text in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text, encoding="utf-8")
        shutil.copy(REPO / "scenarios" / "schema.json", folder / "schema.json")
        (tmp_path / "pyproject.toml").write_text(
            '[tool.pytest.ini_options]\naddopts = "--strict-markers"\n')
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "scenarios", "-q", "-rA"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True)  # fmt: skip
        try:
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
        return proc.returncode, f"{out}\n{err}"

    return run


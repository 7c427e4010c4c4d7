"""Fixtures for sipharness's own tests: external tools and free loopback ports."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

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

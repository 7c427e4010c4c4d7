"""Fixtures for sipharness's own tests: external tools and free loopback ports."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sipharness.testing import free_port, missing_tool_reason, tools_required


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

"""Fixtures for sipharness's own tests: external tools, free loopback ports."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable

import pytest

REQUIRE_TOOLS = os.environ.get("SIPHARNESS_REQUIRE_TOOLS") == "1"


def tool_path(name: str) -> str:
    """Return the path of an external tool, or skip (fail in CI) when it is missing."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian: apt-get install {DEBIAN_PACKAGE.get(name, name)})"
        if REQUIRE_TOOLS:
            pytest.fail(f"SIPHARNESS_REQUIRE_TOOLS=1 and {message}")
        pytest.skip(message)
    return path


DEBIAN_PACKAGE = {"sipp": "sip-tester", "tcpdump": "tcpdump"}


@pytest.fixture
def require_tool() -> Callable[[str], str]:
    """``require_tool("sipp")`` returns the tool's path or skips (fails under CI)."""
    return tool_path


def free_port(kind: int = socket.SOCK_DGRAM, host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on ``host`` right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        try:
            with socket.socket(socket.AF_INET, other) as s2:
                s2.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port found on loopback")


@pytest.fixture
def loopback_port() -> int:
    return free_port()

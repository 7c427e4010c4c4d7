"""What the harness needs from this host: free loopback ports, external tools, CI strictness."""

from __future__ import annotations

import os
import shutil
import socket

DEBIAN_PACKAGE = {"sipp": "sip-tester", "tcpdump": "tcpdump", "stunnel4": "stunnel4"}


def tools_required() -> bool:
    """True in CI (``SIPHARNESS_REQUIRE_TOOLS=1``): a missing tool is a failure, not a skip."""
    return os.environ.get("SIPHARNESS_REQUIRE_TOOLS") == "1"


def missing_tool_reason(name: str) -> str | None:
    """None when ``name`` is on PATH, else a sentence saying how to install it."""
    if shutil.which(name):
        return None
    return f"{name} is not installed (Debian: apt-get install {DEBIAN_PACKAGE.get(name, name)})"


def free_port(host: str = "127.0.0.1", family: int = socket.AF_INET) -> int:
    """A port free for both UDP and TCP on ``host`` at the time of the call."""
    for _ in range(100):
        with socket.socket(family, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = int(udp.getsockname()[1])
            try:
                with socket.socket(family, socket.SOCK_STREAM) as tcp:
                    tcp.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no port free for both UDP and TCP on {host}")

"""The ``--sip-target`` address syntax, shared by the conformance runner and the load generator."""

from __future__ import annotations

import re

DEFAULT_SIP_PORT = 5060
_ADDRESS = re.compile(r"\[(?P<v6>[^\]]+)\](?::(?P<p6>\d+))?|(?P<host>[^:\[\]]+)(?::(?P<port>\d+))?")


def parse_target_address(text: str, default_port: int = DEFAULT_SIP_PORT) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6]:port`` -> (host without brackets, port).

    Raises ValueError naming the expected form for anything else.
    """
    match = _ADDRESS.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"expected HOST:PORT or [IPv6]:PORT, got {text!r}")
    host = match.group("v6") or match.group("host")
    port = int(match.group("p6") or match.group("port") or default_port)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range in {text!r}")
    return host, port

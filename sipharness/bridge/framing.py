"""Framing SIP messages on a byte stream (TCP/TLS) by Content-Length, RFC 3261 §18.3."""

from __future__ import annotations

import re

MAX_HEAD = 65536
MAX_BODY = 1 << 20
_CL_RE = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\S*)", re.IGNORECASE | re.MULTILINE)


class FramingError(ValueError):
    """The stream cannot be framed any further (bad or missing Content-Length, overlong head)."""


def frame_messages(buffer: bytearray) -> list[bytes]:
    """Remove and return every complete SIP message at the start of ``buffer``.

    Leading CRLFs (keep-alives) are skipped. A message without Content-Length is taken to
    have no body."""
    out: list[bytes] = []
    while True:
        while buffer[:2] == b"\r\n":
            del buffer[:2]
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD:
                raise FramingError("message head too long")
            return out
        head = bytes(buffer[:end])
        match = _CL_RE.search(head)
        length = 0
        if match:
            text = match.group(1)
            if not re.fullmatch(rb"[0-9]+", text):
                raise FramingError(f"bad Content-Length {text!r}")
            length = int(text)
        if length > MAX_BODY:
            raise FramingError("body too long")
        total = end + 4 + length
        if len(buffer) < total:
            return out
        out.append(bytes(buffer[:total]))
        del buffer[:total]

"""Fresh random identifiers (Via branches, tags, Call-IDs, cnonces, SDP session ids).

They come from the operating system's random source, as RFC 3261 §8.1.1.4 recommends for
Call-IDs, but read in blocks: a load run makes five or more per call, and one ``getrandom``
system call per identifier showed up in profiles at a thousand calls a second. A forked
child starts with a fresh block, so parent and child never hand out the same identifier.
"""

from __future__ import annotations

import os
import threading

MAGIC_COOKIE = "z9hG4bK"
"""RFC 3261 §8.1.1.7: every branch we make starts with it."""

_BLOCK = 4096


class _RandomBlock:
    """Bytes from ``os.urandom``, handed out once each, refilled a block at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data = b""
        self._pos = 0

    def take(self, count: int) -> bytes:
        with self._lock:
            start = self._pos
            if start + count > len(self._data):
                self._data, start = os.urandom(max(_BLOCK, count)), 0
            self._pos = start + count
            return self._data[start : start + count]

    def forget(self) -> None:
        self._data, self._pos = b"", 0


_random = _RandomBlock()
os.register_at_fork(after_in_child=_random.forget)


def random_hex(count: int) -> str:
    """``count`` random bytes as ``2 * count`` lower-case hex digits."""
    return _random.take(count).hex()


def random_below(limit: int) -> int:
    """A random integer in ``0 .. limit - 1`` (``limit`` at most 2**64)."""
    return int.from_bytes(_random.take(8), "big") % limit


def new_branch() -> str:
    """A fresh RFC 3261 Via branch (magic cookie ``z9hG4bK`` + 64 random bits)."""
    return MAGIC_COOKIE + _random.take(8).hex()


def new_tag() -> str:
    """A fresh From/To tag (48 random bits)."""
    return _random.take(6).hex()


def new_call_id(host: str) -> str:
    """A fresh Call-ID ``<96 random bits>@host``."""
    return f"{_random.take(12).hex()}@{host}"

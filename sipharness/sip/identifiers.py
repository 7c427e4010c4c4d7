"""Fresh random identifiers (Via branches, tags, Call-IDs, cnonces, SDP session ids).

They come from the operating system's random source, as RFC 3261 §8.1.1.4 recommends for
Call-IDs, but read in blocks: a load run makes five or more per call, and one ``getrandom``
system call per identifier showed up in profiles at a thousand calls a second. A forked
child reads fresh blocks, so parent and child never hand out the same identifier.
"""

from __future__ import annotations

import itertools
import os

MAGIC_COOKIE = "z9hG4bK"
"""RFC 3261 §8.1.1.7: every branch we make starts with it."""

_SLOT = 16
_SLOTS_PER_BLOCK = 256


class _RandomBlock:
    """Bytes from ``os.urandom`` read 4 KiB at a time and handed out in 16-byte slots.

    Without a lock (gevent replaces ``threading.Lock`` with a slower one under Locust): slot
    numbers come from an ``itertools.count`` and blocks are added with ``dict.setdefault``,
    both atomic in CPython, so no slot is handed out twice, even across threads.
    """

    def __init__(self) -> None:
        self._slots = itertools.count()
        self._blocks: dict[int, bytes] = {}

    def take(self, count: int) -> bytes:
        if count > _SLOT:
            return os.urandom(count)
        number, index = divmod(next(self._slots), _SLOTS_PER_BLOCK)
        block = self._blocks.get(number)
        if block is None:
            block = self._blocks.setdefault(number, os.urandom(_SLOT * _SLOTS_PER_BLOCK))
            self._blocks.pop(number - 2, None)
        start = index * _SLOT
        return block[start : start + count]

    def forget(self) -> None:
        self._blocks = {}


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

"""One greenlet that fires the next deadline of many sans-I/O state machines, in time order.

Thousands of calls share one :class:`DeadlineScheduler` instead of a greenlet per transaction:
each owner re-arms with its ``next_deadline()`` after every input, and the scheduler calls
``owner.on_deadline(now)`` (``now`` from ``time.monotonic()``) once that time has come.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from typing import Protocol

import gevent
import gevent.event

log = logging.getLogger(__name__)


class DeadlineOwner(Protocol):
    """Anything with timers: told the time when its armed deadline has come."""

    def on_deadline(self, now: float) -> None: ...


class DeadlineScheduler:
    """A heap of deadlines; the latest ``arm`` for an owner replaces earlier ones.

    The heap holds no owner: a disarmed owner (a closed call) is freed at once, not when its
    last deadline would have come (a transaction's Timer D is 32 s)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int]] = []
        self._armed: dict[int, tuple[float, int, DeadlineOwner]] = {}
        self._seq = itertools.count()
        self._wake = gevent.event.Event()
        self._greenlet: gevent.Greenlet | None = None
        self.closed = False

    def arm(self, owner: DeadlineOwner, deadline: float | None) -> None:
        """Fire ``owner.on_deadline`` at ``deadline`` (monotonic seconds); None disarms."""
        key = id(owner)
        if deadline is None:
            self._armed.pop(key, None)
            return
        armed = self._armed.get(key)
        if armed is not None and armed[0] == deadline:
            return
        sequence = next(self._seq)
        self._armed[key] = (deadline, sequence, owner)
        heapq.heappush(self._heap, (deadline, sequence, key))
        if self._heap[0][1] == sequence:
            self._wake.set()
        if self._greenlet is None and not self.closed:
            self._greenlet = gevent.spawn(self._run)

    def disarm(self, owner: DeadlineOwner) -> None:
        """Forget the owner's deadline."""
        self._armed.pop(id(owner), None)

    def pending(self) -> int:
        """How many owners have an armed deadline."""
        return len(self._armed)

    def _run(self) -> None:
        while not self.closed:
            self._wake.clear()
            now = time.monotonic()
            while self._heap and self._heap[0][0] <= now:
                _, sequence, key = heapq.heappop(self._heap)
                armed = self._armed.get(key)
                if armed is None or armed[1] != sequence:
                    continue  # re-armed or disarmed since
                del self._armed[key]
                owner = armed[2]
                try:
                    owner.on_deadline(now)
                except Exception:
                    log.exception("timer handler of %r failed", owner)
            timeout = self._heap[0][0] - time.monotonic() if self._heap else None
            self._wake.wait(timeout=None if timeout is None else max(timeout, 0.0))

    def close(self) -> None:
        """Stop the greenlet; armed deadlines never fire."""
        self.closed = True
        self._armed.clear()
        self._heap.clear()
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

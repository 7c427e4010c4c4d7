"""Per-source rate limit of new, not yet authenticated INVITEs (AUTH-10): a token bucket each.

A source is the transport address (IP and port) a request came from. Every INVITE outside
a dialog counts (a call takes two: the challenged one and the one with credentials), so a
made-up Authorization header does not get around it. Over the limit the bridge drops the
request silently: no response, no transaction, no nonce (answering a flood only doubles it)."""

from __future__ import annotations

import time
from collections import OrderedDict


class FloodLimiter:
    """Token buckets of ``burst`` requests refilled at ``rate`` per second, one per source.

    At most ``max_sources`` buckets are kept (the least recently used goes first), so a
    flood from many sources cannot grow the table without bound either."""

    def __init__(self, rate: float, burst: int, max_sources: int = 10000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_sources = max_sources
        self._buckets: OrderedDict[tuple[str, int], tuple[float, float]] = OrderedDict()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, source: tuple[str, int], now: float | None = None) -> bool:
        """Take one token for ``source``; False when its bucket is empty (drop the request)."""
        now = time.monotonic() if now is None else now
        tokens, stamp = self._buckets.pop(source, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - stamp) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        else:
            self.dropped += 1
        if tokens < self.burst:  # a full bucket is the same as no bucket: keep only the used
            self._buckets[source] = (tokens, now)
        while len(self._buckets) > self.max_sources:
            self._buckets.popitem(last=False)
        return allowed

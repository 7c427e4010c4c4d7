"""The per-source limit of unauthenticated INVITEs (AUTH-10): token buckets, bounded table."""

from __future__ import annotations

from sipharness.bridge.flood import FloodLimiter

SOURCE = ("192.0.2.7", 5060)


def test_a_source_gets_its_burst_then_the_rate() -> None:
    limiter = FloodLimiter(rate=10.0, burst=5)
    assert [limiter.allow(SOURCE, now=0.0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert limiter.dropped == 2
    assert [limiter.allow(SOURCE, now=0.5) for _ in range(6)] == [True] * 5 + [False]
    assert not limiter.allow(SOURCE, now=0.55)
    assert limiter.allow(SOURCE, now=0.65)


def test_sources_are_limited_separately_by_address_and_port() -> None:
    limiter = FloodLimiter(rate=1.0, burst=1)
    assert limiter.allow(SOURCE, now=0.0)
    assert not limiter.allow(SOURCE, now=0.0)
    assert limiter.allow(("192.0.2.7", 5061), now=0.0)
    assert limiter.allow(("192.0.2.8", 5060), now=0.0)


def test_the_table_of_sources_stays_bounded() -> None:
    limiter = FloodLimiter(rate=1.0, burst=2, max_sources=100)
    for port in range(1000):
        limiter.allow(("192.0.2.7", port), now=0.0)
    assert len(limiter) == 100
    for _ in range(3):
        limiter.allow(SOURCE, now=0.0)
    assert limiter.dropped == 1 and len(limiter) == 100

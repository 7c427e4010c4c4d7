"""The generator's own saturation: CPU, gevent loop lag, kernel UDP drops — and when to warn.

A load number means nothing if the generator, not the target, was the bottleneck. Each
Locust process runs one :class:`SaturationMonitor` greenlet while the test runs.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gevent
import psutil

log = logging.getLogger(__name__)

CPU_LIMIT = 90.0
"""Percent of one core above which a (single-threaded) generator process is saturated."""
LAG_LIMIT_MS = 50.0
"""Loop lag (p95 over the last samples) above which timers and receives run late."""
TICK = 0.1


def udp_counters(snmp: str = "/proc/net/snmp", snmp6: str = "/proc/net/snmp6") -> dict[str, int]:
    """The kernel's UDP ``InErrors`` and ``RcvbufErrors`` (IPv4 + IPv6), 0 where unreadable."""
    out = {"InErrors": 0, "RcvbufErrors": 0}
    try:
        lines = [line.split() for line in Path(snmp).read_text().splitlines()
                 if line.startswith("Udp:")]  # fmt: skip
        if len(lines) >= 2:
            for name, value in zip(lines[0][1:], lines[1][1:], strict=False):
                if name in out:
                    out[name] += int(value)
    except (OSError, ValueError):
        pass
    try:
        for line in Path(snmp6).read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in ("Udp6InErrors", "Udp6RcvbufErrors"):
                out[parts[0].removeprefix("Udp6")] += int(parts[1])
    except (OSError, ValueError):
        pass
    return out


def percentile(values: list[float], q: float) -> float:
    """The ``q`` (0..1) quantile by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


@dataclass
class Saturation:
    """One process's saturation at one moment (sent from workers to the master)."""

    node: str
    cpu_percent: float = 0.0
    cpu_percent_max: float = 0.0
    loop_lag_ms_p95: float = 0.0
    loop_lag_ms_max: float = 0.0
    udp_in_errors: int = 0
    udp_rcvbuf_errors: int = 0
    host_cpu_percent: float = 0.0
    load_average: float = 0.0
    cores: int = 1
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Saturation:
        return cls(**data)

    def problems(self) -> list[str]:
        """Why this process may have been the bottleneck (empty when it was not)."""
        out = []
        if self.cpu_percent >= CPU_LIMIT:
            out.append(f"{self.node}: CPU at {self.cpu_percent:.0f} % of a core")
        if self.loop_lag_ms_p95 >= LAG_LIMIT_MS:
            lag = f"{self.node}: gevent loop lag p95 {self.loop_lag_ms_p95:.0f} ms"
            if self.cpu_percent < CPU_LIMIT and self.host_cpu_percent >= CPU_LIMIT:
                lag += (f" while this host's CPUs are {self.host_cpu_percent:.0f} % busy (load "
                        f"average {self.load_average:.1f} on {self.cores} cores): the generator "
                        "waits for a CPU")  # fmt: skip
            out.append(lag)
        if self.udp_in_errors or self.udp_rcvbuf_errors:
            out.append(f"{self.node}: the kernel dropped {self.udp_in_errors} UDP datagrams "
                       f"on this host ({self.udp_rcvbuf_errors} for a full receive buffer; "
                       "the generator's sockets or another process's)")
        return out


class SaturationMonitor:
    """Samples CPU and UDP counters every second and the loop lag every 0.1 s."""

    def __init__(self, node: str, window: int = 50) -> None:
        self.node = node
        self.process = psutil.Process()
        self._lags: deque[float] = deque(maxlen=window)
        self._greenlet: gevent.Greenlet | None = None
        self._base = udp_counters()
        self.current = Saturation(node)
        self._warned: set[str] = set()
        self.lag_max_ms = 0.0
        self.cpu_max = 0.0

    def start(self) -> None:
        """Begin sampling (again, from zero UDP deltas)."""
        self.stop()
        self._base = udp_counters()
        self._lags.clear()
        self.lag_max_ms = self.cpu_max = 0.0
        self.current = Saturation(self.node)
        self._warned.clear()
        self.process.cpu_percent(None)
        psutil.cpu_percent(None)
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def _run(self) -> None:
        ticks = 0
        while True:
            before = time.perf_counter()
            gevent.sleep(TICK)
            lag = max(0.0, (time.perf_counter() - before - TICK) * 1000)
            self._lags.append(lag)
            self.lag_max_ms = max(self.lag_max_ms, lag)
            ticks += 1
            if ticks % round(1 / TICK) == 0:
                self.sample()

    def sample(self) -> Saturation:
        """Take a sample now, log any new reason for concern, and return it."""
        cpu = self.process.cpu_percent(None)
        self.cpu_max = max(self.cpu_max, cpu)
        host = psutil.cpu_percent(None)
        udp = udp_counters()
        self.current = Saturation(
            self.node,
            cpu_percent=cpu,
            cpu_percent_max=self.cpu_max,
            loop_lag_ms_p95=percentile(list(self._lags), 0.95),
            loop_lag_ms_max=self.lag_max_ms,
            udp_in_errors=udp["InErrors"] - self._base["InErrors"],
            udp_rcvbuf_errors=udp["RcvbufErrors"] - self._base["RcvbufErrors"],
            host_cpu_percent=host,
            load_average=os.getloadavg()[0],
            cores=os.cpu_count() or 1,
        )
        problems = self.current.problems()
        self.current.warnings = problems
        for problem in problems:
            kind = problem.split(":", 1)[1].split()[0]
            if kind not in self._warned:
                self._warned.add(kind)
                log.warning("the generator may be the bottleneck, not the target: %s", problem)
        return self.current

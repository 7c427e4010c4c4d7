"""Call-level statistics beyond Locust's rows: calls started and answered, calls held, ASR, RTP.

Each process counts its own calls in :class:`CallCounters`; the process that reports (the
master, or a local runner) adds every node's deltas into :class:`CallTotals`, which keeps
one sample a second for the rates and the history CSV.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class CallDelta:
    """Counts since the last report from one process (sent from worker to master as a dict)."""

    started: int = 0
    answered: int = 0
    unanswered: int = 0
    completed: int = 0
    failed: int = 0
    rtp_calls: int = 0
    rtp_expected: int = 0
    rtp_lost: int = 0
    jitter_ms_sum: float = 0.0
    jitter_ms_max: float = 0.0
    mos_calls: int = 0
    """Calls with RTP whose MOS could be estimated (the media engine's E-model)."""
    mos_sum: float = 0.0
    mos_min: float | None = None

    def add(self, other: CallDelta) -> None:
        for f in fields(self):
            if f.name == "jitter_ms_max":
                self.jitter_ms_max = max(self.jitter_ms_max, other.jitter_ms_max)
            elif f.name == "mos_min":
                lows = [m for m in (self.mos_min, other.mos_min) if m is not None]
                self.mos_min = min(lows) if lows else None
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallDelta:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class CallCounters:
    """This process's calls: a delta to hand on, and the calls held right now."""

    delta: CallDelta = field(default_factory=CallDelta)
    held: int = 0
    held_peak: int = 0

    def call_started(self) -> None:
        self.delta.started += 1

    def call_answered(self) -> None:
        """The call is up: it counts as held until released."""
        self.held += 1
        self.held_peak = max(self.held_peak, self.held)

    def call_released(self) -> None:
        """An answered call is no longer held (BYE sent or received, or it broke)."""
        self.held = max(0, self.held - 1)

    def call_ended(self, *, answered: bool, ok: bool) -> None:
        """A call was reported: counted with the same report as its Locust rows."""
        if answered:
            self.delta.answered += 1
        else:
            self.delta.unanswered += 1
        if ok:
            self.delta.completed += 1
        else:
            self.delta.failed += 1

    def rtp(self, expected: int, lost: int, jitter_ms: float, mos: float | None = None) -> None:
        """One call's RTP receive statistics and its MOS (None when none was estimated)."""
        d = self.delta
        d.rtp_calls += 1
        d.rtp_expected += max(0, expected)
        d.rtp_lost += max(0, lost)
        d.jitter_ms_sum += jitter_ms
        d.jitter_ms_max = max(d.jitter_ms_max, jitter_ms)
        if mos is not None:
            d.mos_calls += 1
            d.mos_sum += mos
            d.mos_min = mos if d.mos_min is None else min(d.mos_min, mos)

    def take(self) -> dict[str, Any]:
        """The delta since the last take, plus the calls held now (resets the delta)."""
        out = {"delta": self.delta.to_dict(), "held": self.held, "held_peak": self.held_peak}
        self.delta = CallDelta()
        return out

    def reset(self) -> None:
        self.delta = CallDelta()
        self.held_peak = self.held


RATE_WINDOW = 5.0
"""Seconds over which the current calls/s are measured."""


@dataclass
class CallTotals:
    """Every node's calls added up, with a per-second history for rates."""

    total: CallDelta = field(default_factory=CallDelta)
    held_by_node: dict[str, int] = field(default_factory=dict)
    held_peak: int = 0
    started_at: float = field(default_factory=time.time)
    history: deque[dict[str, float]] = field(default_factory=lambda: deque(maxlen=86400))

    def add(self, node: str, report: dict[str, Any]) -> None:
        """Add one node's ``CallCounters.take()``."""
        self.total.add(CallDelta.from_dict(report.get("delta", {})))
        self.held_by_node[node] = int(report.get("held", 0))
        self.held_peak = max(self.held_peak, self.held, int(report.get("held_peak", 0)))

    @property
    def held(self) -> int:
        return sum(self.held_by_node.values())

    @property
    def answer_seizure_ratio(self) -> float | None:
        """Answered calls over calls that got a final answer (None before any did)."""
        finished = self.total.answered + self.total.unanswered
        return self.total.answered / finished if finished else None

    @property
    def rtp_loss_ratio(self) -> float | None:
        return self.total.rtp_lost / self.total.rtp_expected if self.total.rtp_expected else None

    @property
    def jitter_ms_avg(self) -> float | None:
        return self.total.jitter_ms_sum / self.total.rtp_calls if self.total.rtp_calls else None

    @property
    def mos_avg(self) -> float | None:
        return self.total.mos_sum / self.total.mos_calls if self.total.mos_calls else None

    def sample(self, now: float | None = None) -> dict[str, float]:
        """Record the running totals at ``now`` (wall seconds); return the sample."""
        now = time.time() if now is None else now
        row = {"time": now, "started": float(self.total.started),
               "answered": float(self.total.answered), "held": float(self.held)}  # fmt: skip
        self.history.append(row)
        return row

    def rate(self, key: str, window: float = RATE_WINDOW) -> float:
        """Calls ``key`` (started/answered) per second over the last ``window`` seconds."""
        if len(self.history) < 2:
            return 0.0
        last = self.history[-1]
        first = last
        for row in reversed(self.history):
            first = row
            if last["time"] - row["time"] >= window:
                break
        span = last["time"] - first["time"]
        return (last[key] - first[key]) / span if span > 0 else 0.0

    def average_rate(self, key: str) -> float:
        """Calls ``key`` per second over the whole run so far."""
        if not self.history:
            return 0.0
        span = self.history[-1]["time"] - self.started_at
        return self.history[-1][key] / span if span > 0 else 0.0

    def reset(self) -> None:
        self.total = CallDelta()
        self.held_peak = self.held
        self.started_at = time.time()
        self.history.clear()

    def summary(self) -> list[tuple[str, str]]:
        """(statistic, value) rows for the web UI, the CSV and the HTML report."""
        t = self.total

        def pct(x: float | None) -> str:
            return "n/a" if x is None else f"{100 * x:.2f} %"

        def ms(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.2f} ms"

        def score(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.2f}"

        return [
            ("calls started", str(t.started)),
            ("calls answered", str(t.answered)),
            ("calls completed cleanly", str(t.completed)),
            ("calls failed", str(t.failed)),
            ("calls held now", str(self.held)),
            ("calls held (peak)", str(self.held_peak)),
            ("calls started per second (last 5 s)", f"{self.rate('started'):.1f}"),
            ("calls answered per second (last 5 s)", f"{self.rate('answered'):.1f}"),
            ("calls started per second (run average)", f"{self.average_rate('started'):.1f}"),
            ("answer-seizure ratio", pct(self.answer_seizure_ratio)),
            ("calls with RTP", str(t.rtp_calls)),
            ("RTP loss", pct(self.rtp_loss_ratio)),
            ("RTP jitter (mean of calls)", ms(self.jitter_ms_avg)),
            ("RTP jitter (worst call)", ms(t.jitter_ms_max if t.rtp_calls else None)),
            ("RTP MOS (mean of calls)", score(self.mos_avg)),
            ("RTP MOS (worst call)", score(t.mos_min)),
        ]

"""Load shapes: ramp, soak, spike, and a capacity search that finds the highest clean call rate.

Each shape reads its settings from sipharness's options (``--peak-users``, ``--shape-time``,
``--capacity-*``, ``--slo-*``) and stops the run by itself. ``loadtests/shapes/*.py`` expose
one each to Locust: ``locust -f loadtests/locustfile.py,loadtests/shapes/ramp.py``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from locust import LoadTestShape

from sipharness.load.phases import ANSWER, POST_DIAL
from sipharness.load.run import run_of

log = logging.getLogger(__name__)


def _option(shape: LoadTestShape, name: str, default: Any) -> Any:
    runner = shape.runner
    options = runner.environment.parsed_options if runner is not None else None
    value = getattr(options, name, None) if options is not None else None
    return default if value is None else value


class RampShape(LoadTestShape):
    """A cold ramp: users rise steadily from 0 to ``--peak-users`` over the first two
    thirds of ``--shape-time``, hold the peak for the last third, then the run stops."""

    def tick(self) -> tuple[int, float] | None:
        peak, length = int(_option(self, "peak_users", 50)), float(_option(self, "shape_time", 60))
        now = self.get_run_time()
        if now >= length:
            return None
        rise = length * 2 / 3
        users = peak if now >= rise else max(1, math.ceil(peak * now / rise))
        return users, max(1.0, peak / rise * 2)


class SoakShape(LoadTestShape):
    """A soak: up to ``--peak-users`` within 10 % of ``--shape-time``, then held there."""

    def tick(self) -> tuple[int, float] | None:
        peak, length = int(_option(self, "peak_users", 50)), float(_option(self, "shape_time", 60))
        if self.get_run_time() >= length:
            return None
        return peak, max(1.0, peak / max(1.0, length * 0.1))


class SpikeShape(LoadTestShape):
    """A spike: a baseline of a fifth of ``--peak-users``; from one third of
    ``--shape-time`` the peak arrives at once for a sixth of it, then back to baseline."""

    def tick(self) -> tuple[int, float] | None:
        peak, length = int(_option(self, "peak_users", 50)), float(_option(self, "shape_time", 60))
        now = self.get_run_time()
        if now >= length:
            return None
        base = max(1, peak // 5)
        if length / 3 <= now < length / 2:
            return peak, float(peak)  # everyone at once
        return base, float(peak)


@dataclass
class StepWindow:
    """Locust's counters for one row at the start of a capacity step."""

    requests: int = 0
    failures: int = 0
    times: dict[int, int] = field(default_factory=dict)


def percentile_between(before: dict[int, int], after: dict[int, int], q: float) -> float | None:
    """The ``q`` quantile (ms) of the response times added between two snapshots of a
    Locust ``StatsEntry.response_times`` histogram; None when none were added."""
    added = {ms: after[ms] - before.get(ms, 0) for ms in after if after[ms] > before.get(ms, 0)}
    total = sum(added.values())
    if not total:
        return None
    rank = math.ceil(q * total)
    seen = 0
    for ms in sorted(added):
        seen += added[ms]
        if seen >= rank:
            return float(ms)
    return float(max(added))


@dataclass(frozen=True)
class StepVerdict:
    """How one capacity step went against the SLO."""

    rate: float
    calls: int
    failure_ratio: float
    pdd_p95_ms: float | None
    met: bool
    reason: str


def judge_step(rate: float, calls: int, failures: int, pdd_p95_ms: float | None,
               slo_pdd_ms: float, slo_failure_ratio: float) -> StepVerdict:  # fmt: skip
    """Whether a step at ``rate`` met the SLO (p95 post-dial delay, failure ratio)."""
    ratio = failures / calls if calls else 1.0
    if calls == 0:
        return StepVerdict(rate, 0, 1.0, None, False, "no call finished in the step")
    if ratio > slo_failure_ratio:
        return StepVerdict(rate, calls, ratio, pdd_p95_ms, False,
                           f"failure ratio {ratio:.3f} > {slo_failure_ratio:g}")  # fmt: skip
    if pdd_p95_ms is None or pdd_p95_ms > slo_pdd_ms:
        shown = "none" if pdd_p95_ms is None else f"{pdd_p95_ms:.0f} ms"
        return StepVerdict(rate, calls, ratio, pdd_p95_ms, False,
                           f"p95 post-dial delay {shown} > {slo_pdd_ms:g} ms")  # fmt: skip
    return StepVerdict(rate, calls, ratio, pdd_p95_ms, True, "met")


class CapacitySearchShape(LoadTestShape):
    """Raise the call rate step by step until the SLO breaks; report the last rate that met it.

    Users pace their calls (``--call-interval`` seconds apart, default 2 × the mean hold +
    1 s), so the rate of a step sets the user count: users = rate × interval. Each step
    lasts ``--capacity-step-time``; its first quarter is not judged. The run stops at the
    first step that breaks the SLO or after ``--capacity-max-steps``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.step = -1
        self.window: dict[str, StepWindow] = {}
        self.verdicts: list[StepVerdict] = []
        self.done = False

    def reset_time(self) -> None:
        super().reset_time()
        self.step, self.verdicts, self.done = -1, [], False

    def settings(self) -> dict[str, float]:
        return {name: float(_option(self, name, default)) for name, default in (
            ("capacity_start_rate", 10.0), ("capacity_step_rate", 10.0),
            ("capacity_step_time", 20.0), ("capacity_max_steps", 20),
            ("slo_pdd_p95", 1000.0), ("slo_failure_ratio", 0.01),
            ("call_interval", 0.0))}  # fmt: skip

    def tick(self) -> tuple[int, float] | None:
        if self.done:
            return None
        s = self.settings()
        interval = s["call_interval"] or self._default_interval()
        now = self.get_run_time()
        step = int(now // s["capacity_step_time"])
        judged_from = step * s["capacity_step_time"] + s["capacity_step_time"] / 4
        if step != self.step:
            if self.step >= 0 and self._finish_step(s):
                return None
            if step >= s["capacity_max_steps"]:
                self._conclude(s, "the last step still met the SLO (--capacity-max-steps)")
                return None
            self.step = step
            self.window = {}
        if not self.window and now >= judged_from:
            self.window = self._snapshot()
        rate = s["capacity_start_rate"] + self.step * s["capacity_step_rate"]
        users = max(1, math.ceil(rate * interval))
        return users, float(max(users, 1))

    def _default_interval(self) -> float:
        """2 × the mean hold + 1 s, written into the options so every user paces by it."""
        assert self.runner is not None
        environment = self.runner.environment
        interval = 2 * run_of(environment).hold.mean + 1
        options: Any = environment.parsed_options
        options.call_interval = interval
        return interval

    def _rows(self) -> dict[str, Any]:
        assert self.runner is not None
        stats = self.runner.stats
        return {name: stats.get(name, "SIP") for name in (POST_DIAL, ANSWER)}

    def _snapshot(self) -> dict[str, StepWindow]:
        out = {}
        for name, entry in self._rows().items():
            out[name] = StepWindow(entry.num_requests, entry.num_failures,
                                   dict(entry.response_times))  # fmt: skip
        total = self.runner.stats.total if self.runner is not None else None
        if total is not None:
            out["total"] = StepWindow(total.num_requests, total.num_failures)
        return out

    def _finish_step(self, s: dict[str, float]) -> bool:
        """Judge the step that just ended; True when the SLO broke (the search is over)."""
        rate = s["capacity_start_rate"] + self.step * s["capacity_step_rate"]
        before, after = self.window, self._snapshot()
        if not before:
            return False
        row = POST_DIAL if after[POST_DIAL].requests > before[POST_DIAL].requests else ANSWER
        b, a = before[row], after[row]
        calls = a.requests - b.requests
        failures = after["total"].failures - before["total"].failures
        p95 = percentile_between(b.times, a.times, 0.95)
        verdict = judge_step(rate, calls + failures, failures, p95, s["slo_pdd_p95"],
                             s["slo_failure_ratio"])  # fmt: skip
        self.verdicts.append(verdict)
        log.info("capacity search: %.1f calls/s: %s (calls %d, failures %d, p95 PDD %s ms)",
                 rate, verdict.reason, verdict.calls, failures, p95)  # fmt: skip
        if not verdict.met:
            self._conclude(s, f"SLO broke at {rate:g} calls/s: {verdict.reason}")
            return True
        return False

    def _conclude(self, s: dict[str, float], why: str) -> None:
        self.done = True
        met = [v.rate for v in self.verdicts if v.met]
        best = f"{max(met):g} calls/s" if met else "none (the first step broke the SLO)"
        log.info("capacity search: highest rate meeting the SLO: %s (%s)", best, why)
        rows = [("capacity: highest call rate meeting the SLO", best),
                ("capacity: SLO", f"p95 post-dial delay ≤ {s['slo_pdd_p95']:g} ms, "
                                  f"failure ratio ≤ {s['slo_failure_ratio']:g}"),
                ("capacity: stopped because", why)]  # fmt: skip
        rows += [(f"capacity step {v.rate:g} calls/s",
                  f"{v.reason}; calls {v.calls}; p95 PDD "
                  f"{'n/a' if v.pdd_p95_ms is None else f'{v.pdd_p95_ms:.0f} ms'}")
                 for v in self.verdicts]  # fmt: skip
        if self.runner is not None:
            run_of(self.runner.environment).capacity = rows

"""The Locust user: one trunk that places calls from the scenario plans, one after another.

Each user has its own agent and so its own source port unless ``--source-ports`` says
otherwise (see loadtests/README.md on the per-source-address trap). Every call becomes one
Locust row per phase.
"""

from __future__ import annotations

import random
import time
from typing import Any

from locust import User, task
from locust.exception import StopUser

from sipharness.agent import Agent
from sipharness.load.dialin import LoadPlan, pick, place_call
from sipharness.load.phases import REQUEST_TYPE, CallFailure, CallResult, phase_rows
from sipharness.load.run import LoadRun, run_of


class SipUser(User):
    """Dials the target again and again: a plan picked by weight, held, hung up."""

    abstract = True

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.load_run: LoadRun = run_of(environment)
        self.rng = random.Random()
        self.agent: Agent | None = None
        self._last_plan: LoadPlan | None = None
        self._task_started = time.monotonic()

    def wait_time(self) -> float:
        """Pacing with ``--call-interval``; otherwise the last plan's think time, or none."""
        interval = float(getattr(self.load_run.options, "call_interval", 0.0) or 0.0)
        if interval > 0:
            return max(0.0, interval - (time.monotonic() - self._task_started))
        plan = self._last_plan
        return plan.think_time or 0.0 if plan is not None else 0.0

    def on_start(self) -> None:
        self.agent = self.load_run.new_agent()

    def on_stop(self) -> None:
        if self.agent is not None and not self.load_run.owns(self.agent):
            self.agent.close()
        self.agent = None

    @task
    def dial(self) -> None:
        """Place one call and report it."""
        self._task_started = time.monotonic()
        run, agent, target = self.load_run, self.agent, self.load_run.target
        assert agent is not None and target is not None
        if run.draining:
            raise StopUser()
        plan = self._last_plan = pick(run.plans, self.rng)
        counters = run.counters
        counters.call_started()
        run.in_progress += 1
        answered = False

        def on_answer() -> None:
            nonlocal answered
            answered = True
            counters.call_answered()

        try:
            result = place_call(agent, plan, target, hold=run.hold, rng=self.rng,
                                rtp=getattr(run.options, "rtp", "auto"),
                                on_answer=on_answer)  # fmt: skip
            counters.call_ended(answered=result.answered, ok=result.ok)
            if result.rtp is not None:
                counters.rtp(result.rtp["expected"], result.rtp["lost"], result.rtp["jitter_ms"],
                             result.rtp.get("mos"))
            self.report(result)
            run.call_log.write(result)
        finally:
            run.in_progress -= 1
            if answered:
                counters.call_released()

    def report(self, result: CallResult) -> None:
        """Fire one Locust request event per phase row."""
        fire = self.environment.events.request.fire
        for row in phase_rows(result):
            fire(request_type=REQUEST_TYPE, name=row.name, response_time=row.ms,
                 response_length=0, context={"scenario": result.scenario},
                 exception=CallFailure(row.failure) if row.failure else None)  # fmt: skip

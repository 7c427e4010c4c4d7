"""Scenarios that are more than a dial-in (CANCEL, re-INVITE, OPTIONS...) run under load
through the conformance runner's executor, step by step, without its Allure reporting.

Webhook, roster and media steps are skipped per call (the embedded bridge's webhooks are
counted for the whole run instead); the first failed expectation ends the call and names
the failure: ``expect 487: expected status 487, saw 200 OK``.
"""

from __future__ import annotations

import time

import pytest

from sipharness.agent import CallError, CallRecord
from sipharness.load.options import Target
from sipharness.load.phases import CallResult, scenario_row
from sipharness.scenario import executor
from sipharness.scenario.model import ExpectRoster, ExpectWebhook, Media, Step
from sipharness.scenario.plan import Plan
from sipharness.scenario.profiles import TargetProfile

NOT_PER_CALL = (ExpectWebhook, ExpectRoster, Media)
LOAD_PROFILE = TargetProfile("load", "a load run: observes SIP only",
                             frozenset({"udp", "tcp", "tls"}))  # fmt: skip
"""Under load a step over another transport is tried: a target without it fails that call
by name, where the conformance runner would skip the test."""


def run_scripted(plan: Plan, name: str, target: Target) -> CallResult:
    """Run every per-call step of ``plan`` against ``target``; the call is ended (BYE or
    CANCEL) whatever happens."""
    run = executor.ScenarioRun(plan, executor.Target(
        target.host, target.port, target.transport, target.username, target.password,
        target.room_code, LOAD_PROFILE), target.transport)  # fmt: skip
    started = time.monotonic()
    failure: str | None = None
    step: Step | None = None
    try:
        for step in plan.steps:
            if not isinstance(step, NOT_PER_CALL):
                run.run_step(step)
    except executor.ExpectationFailed as exc:
        failure = f"expected {exc.expected}, saw {exc.seen}"
        if step is not None:
            failure = f"{executor.describe(step)}: {failure}"
    except CallError as exc:
        failure = type(exc).__name__
        if step is not None:
            failure = f"{executor.describe(step)}: {failure}"
    except pytest.skip.Exception as exc:  # a capability the executor would skip the test for
        failure = f"cannot run under load: {exc.msg}"
    finally:
        run.cleanup()
    record = run.record() or CallRecord("", run.uri(), "")
    result = CallResult(name, record, answered=record.outcome.answered, ok=failure is None,
                        failure=failure, failed_phase=scenario_row(name) if failure else None)
    result.scenario_s = time.monotonic() - started
    return result

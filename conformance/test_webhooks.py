"""Webhook rules a scenario file cannot state: arithmetic on timestamps (EVT-02) and what a
refused delivery leads to (EVT-04)."""

from __future__ import annotations

import secrets
import time
from datetime import datetime
from typing import Any

import allure
import gevent
import pytest

from sipharness.agent import Agent, Call, Credentials, room_uri
from sipharness.scenario.executor import Target

HOLD = 2.0


def needs_webhooks(target: Target) -> None:
    if target.webhooks is None:
        pytest.skip(f"target profile {target.profile.name!r}: the webhooks of this target "
                    "cannot be observed")


def accepted_event(target: Target, kind: str, user_id: str, timeout: float) -> Any:
    """The first accepted webhook of ``kind`` for ``user_id``, waiting (gevent-friendly)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in target.webhooks.events(kind):
            if event.data.get("user_id") == user_id:
                return event
        gevent.sleep(0.05)
    return None


def rfc3339(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def dial(agent: Agent, target: Target, credentials: Credentials, user_id: str) -> Call:
    uri = room_uri(target.room_code, target.host, target.port_for(agent.kind))
    call = agent.dial(uri, credentials=credentials, headers=[("X-100ms-UserID", user_id)])
    assert call.outcome.answered, call.outcome.failure
    return call


@allure.epic("Events and webhooks")
@allure.feature("events")
@allure.story("EVT-02")
@pytest.mark.check_EVT_02
def test_leave_reports_the_call_length_and_follows_the_join(
        sip_target: Target, sip_agent: Agent, sip_credentials: Credentials) -> None:
    needs_webhooks(sip_target)
    user_id = f"evt02-{secrets.token_hex(4)}"
    call = dial(sip_agent, sip_target, sip_credentials, user_id)
    answered = time.monotonic()
    call.wait_ended(HOLD)
    sip_agent.finish(call)
    length = time.monotonic() - answered
    leave = accepted_event(sip_target, "peer.leave.success", user_id, timeout=5)
    assert leave is not None, "no peer.leave.success after BYE"
    data = leave.data
    assert abs(float(data["duration"]) - length) <= 2.0, (
        f"duration {data['duration']} s for a call of {length:.1f} s (EVT-02: within 2 s)")
    assert rfc3339(data["left_at"]) >= rfc3339(data["joined_at"]), (
        f"left_at {data['left_at']} is before joined_at {data['joined_at']}")


@allure.epic("Events and webhooks")
@allure.feature("events")
@allure.story("EVT-04")
@pytest.mark.check_EVT_04
def test_a_refused_delivery_is_retried_with_the_same_envelope_and_secret(
        sip_target: Target, sip_agent: Agent, sip_credentials: Credentials) -> None:
    needs_webhooks(sip_target)
    receiver = sip_target.webhooks
    user_id = f"evt04-{secrets.token_hex(4)}"
    receiver.fail_next(1, status=500)
    call = dial(sip_agent, sip_target, sip_credentials, user_id)
    try:
        accepted = accepted_event(sip_target, "peer.join.success", user_id, timeout=6)
        assert accepted is not None, "the join webhook was not delivered again after a 500"
    finally:
        sip_agent.finish(call)
    tries = [d for d in receiver.deliveries()
             if d.type == "peer.join.success" and d.data.get("user_id") == user_id]
    assert len(tries) >= 2, f"{len(tries)} delivery attempt(s): the refused one was not retried"
    assert {d.id for d in tries} == {accepted.id}, "a retry carried a new envelope id"
    header = (sip_target.webhook_secret_header or "").lower()
    assert header and all(d.headers.get(header) for d in tries), (
        f"a delivery came without the secret header {sip_target.webhook_secret_header}")

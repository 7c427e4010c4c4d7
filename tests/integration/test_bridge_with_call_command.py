"""``sipharness call`` (the project's own UAC) dials the mock bridge: the two stacks check
each other, including Twilio-style identity headers in the URI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sipharness.bridge.process import MockBridge
from sipharness.webhooks import WebhookReceiver

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_sipharness_call_completes_a_call_with_uri_headers(transport: str) -> None:
    with WebhookReceiver() as rx, MockBridge(webhook_url=rx.url) as bridge:
        uri = (f"sip:{bridge.room_code}@{bridge.target()}"
               "?X-100ms-Display-Name=John%20Doe&X-100ms-UserID=call-cmd")
        env = dict(os.environ, SIPHARNESS_PASSWORD=bridge.password)
        done = subprocess.run(
            [sys.executable, "-m", "sipharness", "call", uri, "--username", bridge.username,
             "--transport", transport, "--from", "sip:+14155550000@127.0.0.1", "--timeout", "5"],
            capture_output=True, text=True, timeout=30, env=env, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert bridge.password not in done.stdout + done.stderr
        join = rx.wait_for("peer.join.success")
        assert (join.data["user_name"], join.data["user_id"]) == ("John Doe", "call-cmd")
        leave = rx.wait_for("peer.leave.success")
        assert leave.data["peer_id"] == join.data["peer_id"]


def test_sipharness_call_reports_the_404_of_an_unknown_room() -> None:
    with MockBridge() as bridge:
        env = dict(os.environ, SIPHARNESS_PASSWORD=bridge.password)
        done = subprocess.run(
            [sys.executable, "-m", "sipharness", "call", f"sip:no-such-room@{bridge.target()}",
             "--username", bridge.username, "--timeout", "5"],
            capture_output=True, text=True, timeout=30, env=env, check=False)
        assert done.returncode == 1
        assert "404" in done.stdout + done.stderr

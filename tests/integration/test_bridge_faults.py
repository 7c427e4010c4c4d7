"""Each ``--fault`` breaks its rule visibly on the wire or in the webhooks (so the conformance
checks for those rules can be seen to fail); the same probes pass against a healthy bridge
in test_bridge_calls.py."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from sipharness.bridge.faults import FAULTS
from sipharness.bridge.probe import (
    DialIn,
    SipProbe,
    SipReply,
    authenticated_call,
    send_authenticated_invite,
)
from sipharness.bridge.process import MockBridge
from sipharness.webhooks import WebhookReceiver

pytestmark = pytest.mark.integration


@contextmanager
def faulty(fault: str, **overrides: Any) -> Iterator[tuple[MockBridge, SipProbe, WebhookReceiver]]:
    with WebhookReceiver() as rx, MockBridge(faults=[fault], webhook_url=rx.url,
                                             overrides=overrides) as bridge, \
            SipProbe(bridge.sip_host, bridge.sip_port) as probe:
        yield bridge, probe, rx


def up(bridge: MockBridge, probe: SipProbe, headers: tuple[str, ...] = ()
       ) -> tuple[DialIn, SipReply, list[SipReply]]:
    call = DialIn(probe, bridge.room_code)
    final, seen = authenticated_call(probe, call, bridge.username, bridge.password,
                                     headers=headers)
    assert final is not None and final.status == 200, [m.start for m in seen]
    return call, final, seen


def check_no_2xx_retransmit() -> None:
    with faulty("no-2xx-retransmit") as (bridge, probe, _):
        up(bridge, probe)
        assert [m for m in probe.collect(1.2) if m.status == 200] == []


def check_401_without_challenge() -> None:
    with faulty("401-without-challenge") as (bridge, probe, _):
        call = DialIn(probe, bridge.room_code)
        probe.send(call.invite())
        reply = probe.wait_status()
        assert reply is not None and reply.status == 401
        assert reply.header("www-authenticate") is None


def check_407_instead_of_401() -> None:
    with faulty("407-instead-of-401") as (bridge, probe, _):
        call = DialIn(probe, bridge.room_code)
        probe.send(call.invite())
        reply = probe.wait_status()
        assert reply is not None and reply.status == 407
        assert reply.header("proxy-authenticate")


def check_accept_wrong_credentials() -> None:
    with faulty("accept-wrong-credentials") as (bridge, probe, _):
        call = DialIn(probe, bridge.room_code)
        final, _ = authenticated_call(probe, call, bridge.username, "wrong-password")
        assert final is not None and final.status == 200


def check_ignore_stale_nonce() -> None:
    with faulty("ignore-stale-nonce", auth={"nonce_lifetime": 0.2}) as (bridge, probe, _):
        call = DialIn(probe, bridge.room_code)
        challenge, _ = send_authenticated_invite(probe, call, bridge.username, bridge.password,
                                                 wait_before_answer=0.4)
        assert challenge is not None
        final = probe.wait_status()
        assert final is not None and final.status == 200


def check_case_sensitive_headers() -> None:
    with faulty("case-sensitive-headers") as (bridge, probe, rx):
        up(bridge, probe, ("x-100ms-display-name: Grace", "x-100ms-userid: grace-1"))
        join = rx.wait_for("peer.join.success")
        assert join.data["user_name"] != "Grace"
        assert join.data["user_id"] != "grace-1"


def check_no_percent_decode() -> None:
    with faulty("no-percent-decode") as (bridge, probe, rx):
        up(bridge, probe, ("X-100ms-Display-Name: John%20Doe",))
        assert rx.wait_for("peer.join.success").data["user_name"] == "John%20Doe"


def check_no_masking() -> None:
    with faulty("no-masking") as (bridge, probe, rx):
        up(bridge, probe)
        assert rx.wait_for("peer.join.success").data["user_name"] == "+14155551234"


def check_double_join_on_retransmit() -> None:
    with faulty("double-join-on-retransmit") as (bridge, probe, rx):
        call = DialIn(probe, bridge.room_code)
        _, invite = send_authenticated_invite(probe, call, bridge.username, bridge.password)
        assert invite is not None  # challenged, then answered with credentials
        final = probe.wait_status()
        assert final is not None and final.status == 200
        probe.send(invite)
        rx.wait_count("peer.join.success", 2, timeout=3.0)


def check_no_leave_webhook() -> None:
    with faulty("no-leave-webhook") as (bridge, probe, rx):
        call, final, _ = up(bridge, probe)
        probe.send(call.ack(final))
        probe.send(call.bye())
        assert (probe.wait_status() or final).status == 200
        rx.wait_for("peer.join.success")
        time.sleep(0.5)
        assert rx.events("peer.leave.success") == []


def check_405_without_allow() -> None:
    with faulty("405-without-allow") as (bridge, probe, _):
        probe.send(DialIn(probe, bridge.room_code).request("MESSAGE"))
        reply = probe.wait_status()
        assert reply is not None and reply.status == 405
        assert reply.header("allow") is None


def check_reinvite_old_sdp() -> None:
    with faulty("reinvite-old-sdp") as (bridge, probe, _):
        call, final, _ = up(bridge, probe)
        probe.send(call.ack(final))
        call.cseq += 1
        probe.send(call.request("INVITE", body=call.sdp().replace("RTP/AVP 0 8 101",
                                                                  "RTP/AVP 8")))
        reply = probe.wait_status()
        assert reply is not None and reply.status == 200
        assert reply.body == final.body
        assert re.search(r"^m=audio \d+ RTP/AVP 0", reply.body, re.M)


def check_no_100_trying() -> None:
    with faulty("no-100-trying") as (bridge, probe, _):
        _, _, seen = up(bridge, probe)
        assert 100 not in [m.status for m in seen]


def check_to_tag_changes() -> None:
    with faulty("to-tag-changes") as (bridge, probe, _):
        _, final, seen = up(bridge, probe)
        ringing = next(m for m in seen if m.status == 180)
        assert ringing.to_tag != final.to_tag


def check_cancel_ignored() -> None:
    with faulty("cancel-ignored", timers={"answer_delay": 0.3}) as (bridge, probe, rx):
        call = DialIn(probe, bridge.room_code)
        _, sent = send_authenticated_invite(
            probe, call, bridge.username, bridge.password)
        assert sent is not None  # challenged, then answered with credentials
        assert probe.wait_status(180) is not None
        probe.send(call.cancel())
        finals = {m.cseq[1]: m.status for m in probe.collect(0.8) if (m.status or 0) >= 200}
        assert finals == {"CANCEL": 200, "INVITE": 200}
        rx.wait_for("peer.join.success")


CHECKS: dict[str, Callable[[], None]] = {
    "no-2xx-retransmit": check_no_2xx_retransmit,
    "401-without-challenge": check_401_without_challenge,
    "407-instead-of-401": check_407_instead_of_401,
    "accept-wrong-credentials": check_accept_wrong_credentials,
    "ignore-stale-nonce": check_ignore_stale_nonce,
    "case-sensitive-headers": check_case_sensitive_headers,
    "no-percent-decode": check_no_percent_decode,
    "no-masking": check_no_masking,
    "double-join-on-retransmit": check_double_join_on_retransmit,
    "no-leave-webhook": check_no_leave_webhook,
    "405-without-allow": check_405_without_allow,
    "reinvite-old-sdp": check_reinvite_old_sdp,
    "no-100-trying": check_no_100_trying,
    "to-tag-changes": check_to_tag_changes,
    "cancel-ignored": check_cancel_ignored,
}


def test_every_fault_has_a_check() -> None:
    assert set(CHECKS) == set(FAULTS)


@pytest.mark.parametrize("fault", sorted(CHECKS))
def test_fault_is_observable(fault: str) -> None:
    CHECKS[fault]()

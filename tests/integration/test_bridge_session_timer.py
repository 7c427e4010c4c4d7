"""EXT-01 with the bridge as the refresher (refresher=uas) and a caller whose Allow has no
UPDATE: the bridge refreshes with re-INVITE, keeps the call up while the refreshes succeed,
and ends it with BYE (and a peer.leave webhook) when they do not."""

from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import pairwise

import pytest

from sipharness.bridge.probe import (
    DialIn,
    SipProbe,
    SipReply,
    authenticated_call,
    response_to,
)
from sipharness.bridge.process import MockBridge
from sipharness.webhooks import WebhookReceiver

pytestmark = pytest.mark.integration

TIMER = "Supported: timer"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as rx:
        yield rx


def answered_call(bridge: MockBridge, probe: SipProbe, expires: int) -> tuple[DialIn, SipReply]:
    """A call asking the bridge to refresh every ``expires`` s, with no Allow header; ACKed."""
    call = DialIn(probe, bridge.room_code)
    final, _ = authenticated_call(probe, call, bridge.username, bridge.password,
                                  headers=(TIMER, f"Session-Expires: {expires};refresher=uas"))
    assert final is not None and final.status == 200
    assert final.header("session-expires") == f"{expires};refresher=uas"
    probe.send(call.ack(final))
    return call, final


def caller_contact(call: DialIn) -> str:
    return f"<sip:{call.caller}@{call.probe.local_host}:{call.probe.local_port}>"


def test_without_update_the_bridge_refreshes_with_re_invite_and_the_call_stays_up(
        receiver: WebhookReceiver) -> None:
    with MockBridge(overrides={"timers": {"min_se": 2}}, webhook_url=receiver.url) as bridge, \
            SipProbe(bridge.sip_host, bridge.sip_port) as probe:
        call, final = answered_call(bridge, probe, 2)
        answered = time.monotonic()
        refreshed_at: list[float] = []
        cseq = 0
        for _ in range(2):
            reinvite = probe.next_request("INVITE", after_cseq=cseq, timeout=2.0)
            assert reinvite is not None, "no re-INVITE within the session interval"
            refreshed_at.append(reinvite.received_at - answered)
            cseq = reinvite.cseq[0]
            assert reinvite.header("session-expires") == "2;refresher=uac"
            assert "timer" in (reinvite.header("supported") or "")
            assert reinvite.header("call-id") == call.call_id
            assert f"tag={call.from_tag}" in (reinvite.header("to") or "")
            assert f"tag={final.to_tag}" in (reinvite.header("from") or "")
            assert reinvite.header("contact")
            assert reinvite.body == final.body  # the answered SDP again, same o= version
            probe.send(response_to(reinvite, 200, "OK", contact=caller_contact(call),
                              body=call.sdp()))
            ack = probe.next_request("ACK", after_cseq=cseq - 1, timeout=2.0)
            assert ack is not None and ack.cseq == (cseq, "ACK")
        assert 0.5 <= refreshed_at[0] < 2.0  # about half the interval, before it runs out
        assert refreshed_at[1] - refreshed_at[0] >= 0.5
        assert receiver.events("peer.leave.success") == []
        call.cseq += 1
        probe.send(call.bye())
        while (reply := probe.wait_status(timeout=2.0)) is not None \
                and reply.cseq != (call.cseq, "BYE"):
            continue
        assert reply is not None and reply.status == 200  # still up: not 481


def test_a_re_invite_refresh_answered_488_ends_the_call_with_bye_and_a_leave_webhook(
        receiver: WebhookReceiver) -> None:
    with MockBridge(overrides={"timers": {"min_se": 2}}, webhook_url=receiver.url) as bridge, \
            SipProbe(bridge.sip_host, bridge.sip_port) as probe:
        _, final = answered_call(bridge, probe, 2)
        answered = time.monotonic()
        reinvite = probe.next_request("INVITE", after_cseq=0, timeout=2.0)
        assert reinvite is not None
        probe.send(response_to(reinvite, 488, "Not Acceptable Here"))
        ack = probe.next_request("ACK", after_cseq=reinvite.cseq[0] - 1, timeout=2.0)
        assert ack is not None and ack.header("via") == reinvite.header("via")  # non-2xx ACK
        bye = probe.next_request("BYE", after_cseq=reinvite.cseq[0], timeout=3.0)
        assert bye is not None, "the unrefreshed session was not ended"
        assert bye.received_at - answered < 2.0 + 1.0  # at the expiry, one interval on
        assert "session timer expired" in (bye.header("reason") or "")
        probe.send(response_to(bye, 200, "OK"))
        leave = receiver.wait_for("peer.leave.success", timeout=5.0)
        assert leave.data.get("reason") == "session timer expired"
        assert final.header("call-id") == bye.header("call-id")


def test_an_unanswered_re_invite_refresh_is_retransmitted_then_ends_the_call_at_timer_b(
        receiver: WebhookReceiver) -> None:
    t1, t2 = 0.01, 0.04  # Timer B = 64·T1 = 0.64 s; T2 would cap a non-INVITE at 0.04 s
    overrides = {"timers": {"min_se": 2, "t1": t1, "t2": t2}}
    with MockBridge(overrides=overrides, webhook_url=receiver.url) as bridge, \
            SipProbe(bridge.sip_host, bridge.sip_port) as probe:
        answered_call(bridge, probe, 3)  # refresh at 1.5 s; the session expires at 3 s
        first = probe.next_request("INVITE", after_cseq=0, timeout=3.0)
        assert first is not None
        copies = [first.received_at]
        deadline = time.monotonic() + 3.0
        bye = None
        while bye is None and (left := deadline - time.monotonic()) > 0:
            msg = probe.recv(left)
            if msg is None:
                break
            if msg.method == "INVITE" and msg.cseq == first.cseq:
                copies.append(msg.received_at)
            elif msg.method == "BYE":
                bye = msg
        assert bye is not None, "no BYE after the refresh went unanswered"
        reason = bye.header("reason") or ""
        assert "cause=408" in reason and "refresh failed" in reason  # Timer B, not expiry
        assert bye.received_at - copies[0] >= 0.5 * 64 * t1
        gaps = [b - a for a, b in pairwise(copies)]
        assert len(copies) >= 5, copies
        assert max(gaps) > 2 * t2  # an INVITE's interval keeps doubling past T2
        probe.send(response_to(bye, 200, "OK"))
        leave = receiver.wait_for("peer.leave.success", timeout=5.0)
        assert leave.data.get("reason") == "session refresh failed"

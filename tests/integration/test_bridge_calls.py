"""The mock bridge keeps the dial-in contract, driven with raw SIP over UDP (and TCP/TLS)."""

from __future__ import annotations

import itertools
import re
import secrets
import socket
import time
from collections.abc import Iterator

import pytest

from sipharness.bridge.probe import (
    DialIn,
    SipProbe,
    SipReply,
    authenticated_call,
    options_ping,
    send_authenticated_invite,
)
from sipharness.bridge.process import MockBridge
from sipharness.webhooks import WebhookReceiver

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as rx:
        yield rx


@pytest.fixture(scope="module")
def bridge(receiver: WebhookReceiver) -> Iterator[MockBridge]:
    with MockBridge(webhook_url=receiver.url,
                    overrides={"timers": {"answer_delay": 0.3}}) as b:
        yield b


@pytest.fixture
def probe(bridge: MockBridge) -> Iterator[SipProbe]:
    with SipProbe(bridge.sip_host, bridge.sip_port) as p:
        yield p


def user_id() -> str:
    return "test-" + secrets.token_hex(6)


def events_for(rx: WebhookReceiver, uid: str, kind: str) -> list[dict]:
    return [e.body for e in rx.events(kind) if e.data.get("user_id") == uid]


def answered_call(bridge: MockBridge, probe: SipProbe, uid: str | None,
                  headers: tuple[str, ...] = ()) -> tuple[DialIn, SipReply, list[SipReply]]:
    call = DialIn(probe, bridge.room_code)
    if uid is not None:
        headers = (f"X-100ms-UserID: {uid}", *headers)
    final, seen = authenticated_call(probe, call, bridge.username, bridge.password,
                                     headers=headers)
    assert final is not None and final.status == 200, [m.start for m in seen]
    probe.send(call.ack(final))
    return call, final, seen


def test_options_is_answered_with_allow_accept_supported(bridge: MockBridge,
                                                          probe: SipProbe) -> None:
    call = DialIn(probe, bridge.room_code)
    probe.send(call.request("OPTIONS"))
    reply = probe.wait_status()
    assert reply is not None and reply.status == 200
    assert "INVITE" in (reply.header("allow") or "")
    assert reply.header("accept") == "application/sdp"
    assert reply.header("supported") is not None


def test_a_call_joins_the_room_and_leaves_on_bye(bridge: MockBridge, probe: SipProbe,
                                                 receiver: WebhookReceiver) -> None:
    uid = user_id()
    call, final, seen = answered_call(bridge, probe, uid,
                                      ("X-100ms-Display-Name: Ada%20Lovelace",))
    statuses = [m.status for m in seen]
    assert statuses[0] == 401
    trying = [m for m in seen if m.status == 100]
    assert trying and trying[0].to_tag is None
    ringing = [m for m in seen if m.status == 180]
    assert ringing and ringing[0].to_tag == final.to_tag is not None
    assert final.header("contact")
    assert re.search(r"^m=audio [1-9]\d* RTP/AVP 0 101\r?$", final.body, re.M)
    room = bridge.config.rooms[0] if bridge.config else None
    assert room is not None
    join = receiver.wait_for(lambda e: e.type == "peer.join.success"
                             and e.data.get("user_id") == uid)
    assert join.headers["x-webhook-secret"] == "sipharness-webhook-secret"
    data = join.data
    assert (data["user_name"], data["role"], data["room_id"], data["type"]) == \
        ("Ada Lovelace", room.role, room.room_id, "sip")
    assert set(join.body) == {"version", "id", "app_id", "account_id", "timestamp", "type",
                              "data"}
    peers = bridge.peers(room.room_id)
    assert [p["user_id"] for p in peers.values()].count(uid) == 1
    probe.send(call.bye())
    bye_ok = probe.wait_status()
    assert bye_ok is not None and bye_ok.status == 200
    leave = receiver.wait_for(lambda e: e.type == "peer.leave.success"
                              and e.data.get("user_id") == uid)
    assert leave.data["peer_id"] == data["peer_id"]
    assert leave.data["left_at"] >= leave.data["joined_at"]
    assert leave.data["duration"] <= 2
    assert uid not in [p["user_id"] for p in bridge.peers(room.room_id).values()]
    assert len(events_for(receiver, uid, "peer.join.success")) == 1
    assert len(events_for(receiver, uid, "peer.leave.success")) == 1


def test_unauthenticated_invite_is_challenged_and_its_ack_is_not(bridge: MockBridge,
                                                                 probe: SipProbe) -> None:
    call = DialIn(probe, bridge.room_code)
    probe.send(call.invite())
    challenge = probe.wait_status()
    assert challenge is not None and challenge.status == 401
    value = challenge.header("www-authenticate") or ""
    assert value.startswith("Digest ") and 'realm="sipharness.test"' in value
    assert "qop=" in value and "nonce=" in value
    probe.send(call.ack(challenge))
    assert probe.collect(1.2) == []


@pytest.mark.parametrize("wrong", ["password", "username", "uri"])
def test_wrong_credentials_never_answer_200_or_join(bridge: MockBridge, probe: SipProbe,
                                                    receiver: WebhookReceiver,
                                                    wrong: str) -> None:
    uid = user_id()
    call = DialIn(probe, bridge.room_code)
    username = "intruder" if wrong == "username" else bridge.username
    password = "not-it" if wrong == "password" else bridge.password
    uri = "sip:other@127.0.0.1" if wrong == "uri" else None
    challenge, _ = send_authenticated_invite(probe, call, username, password,
                                             headers=(f"X-100ms-UserID: {uid}",),
                                             digest_uri=uri)
    assert challenge is not None and challenge.status == 401
    answer = probe.wait_status()
    assert answer is not None and answer.status in (401, 403)
    time.sleep(0.2)
    assert events_for(receiver, uid, "peer.join.success") == []


def test_cancel_before_answer_gives_487_and_no_join(bridge: MockBridge, probe: SipProbe,
                                                    receiver: WebhookReceiver) -> None:
    uid = user_id()
    call = DialIn(probe, bridge.room_code)
    headers = (f"X-100ms-UserID: {uid}",)
    _, sent = send_authenticated_invite(
        probe, call, bridge.username, bridge.password, headers=headers)
    assert sent is not None  # challenged, then answered with credentials
    ringing = probe.wait_status(180)
    assert ringing is not None and ringing.status == 180
    probe.send(call.cancel())
    got = {m.cseq[1]: m for m in probe.collect(0.6) if m.status and m.status >= 200}
    assert got["CANCEL"].status == 200
    assert got["INVITE"].status == 487
    assert got["INVITE"].to_tag == ringing.to_tag
    probe.send(call.ack(got["INVITE"]))
    time.sleep(0.5)
    assert events_for(receiver, uid, "peer.join.success") == []


def test_cancel_and_bye_for_unknown_transactions_get_481(bridge: MockBridge,
                                                         probe: SipProbe) -> None:
    call = DialIn(probe, bridge.room_code)
    probe.send(call.request("CANCEL"))
    reply = probe.wait_status()
    assert reply is not None and reply.status == 481
    probe.send(call.request("BYE", to_tag="nosuchdialog"))
    reply = probe.wait_status()
    assert reply is not None and reply.status == 481


def test_unsupported_method_gets_405_with_allow(bridge: MockBridge, probe: SipProbe) -> None:
    call = DialIn(probe, bridge.room_code)
    probe.send(call.request("SUBSCRIBE", headers=("Event: presence",)))
    reply = probe.wait_status()
    assert reply is not None and reply.status == 405
    assert "BYE" in (reply.header("allow") or "")


def test_unknown_require_gets_420_with_unsupported(bridge: MockBridge, probe: SipProbe) -> None:
    call = DialIn(probe, bridge.room_code)
    probe.send(call.invite(headers=("Require: 100rel, foo-bar",)))
    reply = probe.wait_status()
    assert reply is not None and reply.status == 420
    assert "foo-bar" in (reply.header("unsupported") or "")


def test_no_common_codec_gets_488_with_warning(bridge: MockBridge, probe: SipProbe) -> None:
    call = DialIn(probe, bridge.room_code)
    sdp = call.sdp().replace("RTP/AVP 0 8 101", "RTP/AVP 18").replace(
        "a=rtpmap:0 PCMU/8000", "a=rtpmap:18 G729/8000")
    final, _ = authenticated_call(probe, call, bridge.username, bridge.password, body=sdp)
    assert final is not None and final.status == 488
    assert final.header("warning")


@pytest.mark.parametrize("code", ["no-such-room", "off-line-000"])
def test_unknown_or_disabled_room_gets_404(bridge: MockBridge, probe: SipProbe,
                                           receiver: WebhookReceiver, code: str) -> None:
    uid = user_id()
    call = DialIn(probe, code)
    final, _ = authenticated_call(probe, call, bridge.username, bridge.password,
                                  headers=(f"X-100ms-UserID: {uid}",))
    assert final is not None and final.status == 404
    time.sleep(0.2)
    assert events_for(receiver, uid, "peer.join.success") == []


def test_reinvite_is_answered_from_the_new_offer(bridge: MockBridge, probe: SipProbe) -> None:
    call, final, _ = answered_call(bridge, probe, user_id())
    version = int(re.search(r"^o=\S+ \d+ (\d+)", final.body, re.M).group(1))  # type: ignore
    pcma = call.sdp().replace("RTP/AVP 0 8 101", "RTP/AVP 8 101")
    call.cseq += 1
    probe.send(call.request("INVITE", body=pcma))
    reply = probe.wait_status()
    assert reply is not None and reply.status == 200
    assert re.search(r"^m=audio \d+ RTP/AVP 8 101", reply.body, re.M)
    new_version = int(re.search(r"^o=\S+ \d+ (\d+)", reply.body, re.M).group(1))  # type: ignore
    assert new_version == version + 1
    probe.send(call.ack(reply))
    call.cseq += 1
    probe.send(call.request("INVITE", body=pcma))
    same = probe.wait_status()
    assert same is not None and same.body == reply.body
    probe.send(call.ack(same))
    call.cseq += 1
    probe.send(call.request("INVITE", body=pcma.replace("a=sendrecv", "a=sendonly")))
    hold = probe.wait_status()
    assert hold is not None and "a=recvonly" in hold.body
    probe.send(call.ack(hold))
    probe.send(call.bye())
    assert (probe.wait_status() or final).status == 200


def test_identity_headers_are_case_insensitive_and_decoded_once(
        bridge: MockBridge, probe: SipProbe, receiver: WebhookReceiver) -> None:
    uid = user_id()
    call, _, _ = answered_call(bridge, probe, None,
                               (f"x-100MS-USERID: {uid}%41",
                                "X-100MS-display-NAME: Jos%C3%A9%2520Doe"))
    want = uid + "A"
    join = receiver.wait_for(lambda e: e.type == "peer.join.success"
                             and e.data.get("user_id") == want)
    assert join.data["user_name"] == "José%20Doe"
    probe.send(call.bye())
    probe.wait_status()


def test_caller_without_display_name_is_named_by_masked_number(
        bridge: MockBridge, probe: SipProbe, receiver: WebhookReceiver) -> None:
    uid = user_id()
    call, _, _ = answered_call(bridge, probe, uid)
    join = receiver.wait_for(lambda e: e.type == "peer.join.success"
                             and e.data.get("user_id") == uid)
    assert join.data["user_name"] == "XXXXXXX1234"
    probe.send(call.bye())
    probe.wait_status()
    assert "+14155551234" not in bridge.log_text()


def test_2xx_is_retransmitted_with_doubling_intervals_from_t1(bridge: MockBridge,
                                                                probe: SipProbe) -> None:
    call = DialIn(probe, bridge.room_code)
    final, _ = authenticated_call(probe, call, bridge.username, bridge.password)
    assert final is not None and final.status == 200
    copies = [final.received_at]
    while len(copies) < 4:
        again = probe.wait_status(timeout=3.0)
        assert again is not None and again.status == 200, "the 2xx was not retransmitted"
        copies.append(again.received_at)
    gaps = [b - a for a, b in itertools.pairwise(copies)]
    assert 0.3 < gaps[0] < 0.8
    assert 1.6 < gaps[1] / gaps[0] < 2.5
    assert 1.6 < gaps[2] / gaps[1] < 2.5
    probe.send(call.ack(final))
    probe.send(call.bye())
    probe.wait_status()


def test_call_over_tcp_reuses_the_connection(bridge: MockBridge,
                                             receiver: WebhookReceiver) -> None:
    uid = user_id()
    with SipProbe(bridge.sip_host, bridge.sip_port, "tcp") as tcp:
        call, _, seen = answered_call(bridge, tcp, uid)
        assert all(m.header("via") and "TCP" in (m.header("via") or "") for m in seen)
        receiver.wait_for(lambda e: e.type == "peer.join.success"
                          and e.data.get("user_id") == uid)
        tcp.send(call.bye())
        reply = tcp.wait_status()
        assert reply is not None and reply.status == 200
    receiver.wait_for(lambda e: e.type == "peer.leave.success"
                      and e.data.get("user_id") == uid)


def test_bridge_stays_up_for_options_over_each_transport(bridge: MockBridge) -> None:
    assert options_ping(bridge.sip_host, bridge.sip_port, "udp") == 200
    assert options_ping(bridge.sip_host, bridge.sip_port, "tcp") == 200


def test_retransmitted_invite_after_the_answer_never_joins_twice(
        bridge: MockBridge, probe: SipProbe, receiver: WebhookReceiver) -> None:
    uid = user_id()
    call = DialIn(probe, bridge.room_code)
    headers = (f"X-100ms-UserID: {uid}",)
    _, invite = send_authenticated_invite(
        probe, call, bridge.username, bridge.password, headers=headers)
    assert invite is not None  # challenged, then answered with credentials
    final = probe.wait_status()
    assert final is not None and final.status == 200
    probe.send(invite)
    again = probe.wait_status()
    assert again is not None and again.status == 200 and again.to_tag == final.to_tag
    probe.send(call.ack(final))
    time.sleep(0.3)
    assert len(events_for(receiver, uid, "peer.join.success")) == 1
    probe.send(call.bye())
    probe.wait_status()


def test_in_dialog_request_with_a_lower_cseq_gets_500(bridge: MockBridge,
                                                      probe: SipProbe) -> None:
    call, final, _ = answered_call(bridge, probe, user_id())
    probe.send(call.request("BYE", cseq=1))
    reply = probe.wait_status()
    assert reply is not None and reply.status == 500
    probe.send(call.bye())
    assert (probe.wait_status() or final).status == 200


def test_non_2xx_final_is_retransmitted_over_udp_on_timer_g(bridge: MockBridge,
                                                           probe: SipProbe) -> None:
    call = DialIn(probe, bridge.room_code)
    probe.send(call.invite())
    first = probe.wait_status()
    assert first is not None and first.status == 401
    copies = [m for m in probe.collect(1.7) if m.status == 401]
    assert len(copies) >= 2
    assert all(c.to_tag == first.to_tag for c in copies)
    assert 1.5 < (copies[1].received_at - copies[0].received_at) / (
        copies[0].received_at - first.received_at) < 2.5
    probe.send(call.ack(first))


def test_cancel_after_the_answer_gets_200_and_leaves_the_call_up(
        bridge: MockBridge, probe: SipProbe, receiver: WebhookReceiver) -> None:
    uid = user_id()
    call = DialIn(probe, bridge.room_code)
    final, _ = authenticated_call(probe, call, bridge.username, bridge.password,
                                  headers=(f"X-100ms-UserID: {uid}",))
    assert final is not None and final.status == 200
    probe.send(call.cancel())
    replies = [m for m in probe.collect(0.4) if m.cseq[1] == "CANCEL"]
    assert [m.status for m in replies] == [200]
    probe.send(call.ack(final))
    probe.send(call.bye())
    bye_ok = next(m for m in probe.collect(0.6) if m.cseq[1] == "BYE")
    assert bye_ok.status == 200
    receiver.wait_for(lambda e: e.type == "peer.leave.success" and e.data["user_id"] == uid)


def test_responses_honour_rport_and_received(bridge: MockBridge, probe: SipProbe) -> None:
    call = DialIn(probe, bridge.room_code)
    probe.send(call.request("OPTIONS"))
    reply = probe.wait_status()
    assert reply is not None
    via = reply.header("via") or ""
    assert f"rport={probe.local_port}" in via and "received=127.0.0.1" in via


def test_a_second_invite_while_the_first_is_pending_gets_500_with_retry_after(
        bridge: MockBridge, probe: SipProbe) -> None:
    call = DialIn(probe, bridge.room_code)
    _, sent = send_authenticated_invite(
        probe, call, bridge.username, bridge.password)
    assert sent is not None  # challenged, then answered with credentials
    ringing = probe.wait_status(180)
    assert ringing is not None and ringing.status == 180
    probe.send(call.request("INVITE", cseq=call.cseq + 1, to_tag=ringing.to_tag,
                            body=call.sdp()))
    second = next(m for m in probe.collect(0.25) if m.cseq == (call.cseq + 1, "INVITE"))
    assert second.status == 500 and (second.header("retry-after") or "").isdigit()
    probe.send(call.ack(second))
    final = probe.wait_status(timeout=2.0)
    assert final is not None and final.status == 200
    probe.send(call.ack(final))
    probe.send(call.bye())
    probe.wait_status()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_calls_over_ipv6_loopback(transport: str) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    with WebhookReceiver() as rx, MockBridge(host="::1", webhook_url=rx.url) as v6, \
            SipProbe("::1", v6.sip_port, transport) as probe:
        call = DialIn(probe, v6.room_code)
        final, _ = authenticated_call(probe, call, v6.username, v6.password)
        assert final is not None and final.status == 200
        assert "@[::1]:" in (final.header("contact") or "")
        assert "c=IN IP6 ::1" in final.body
        probe.send(call.ack(final))
        probe.send(call.bye())
        assert (probe.wait_status() or final).status == 200
        assert rx.wait_for("peer.leave.success").data["type"] == "sip"
        assert v6.roster_url is not None and v6.roster_url.startswith("http://[::1]:")

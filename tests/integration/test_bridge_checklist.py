"""Bridge-side CHECKLIST items that need their own configuration: AUTH-10 (flood limit),
DLG-14 (the 180 repeated during a long join), HDR-07 (P-Asserted-Identity, Privacy: id),
and the command's listener options (one free port for UDP and TCP, no listener refused)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sipharness.bridge.probe import (
    DialIn,
    SipProbe,
    authenticated_call,
    options_ping,
    response_to,
)
from sipharness.bridge.process import MockBridge
from sipharness.webhooks import WebhookReceiver

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def full_call(bridge: MockBridge, probe: SipProbe, call: DialIn,
              headers: tuple[str, ...] = ()) -> None:
    """An authenticated call that is answered, ACKed and hung up."""
    final, _ = authenticated_call(probe, call, bridge.username, bridge.password,
                                  headers=headers)
    assert final is not None and final.status == 200
    probe.send(call.ack(final))
    probe.send(call.bye())
    assert (bye_ok := probe.wait_status(timeout=3.0)) is not None and bye_ok.status == 200


def test_an_invite_flood_from_one_source_is_limited_and_others_still_call() -> None:
    flood = 200
    burst = 10
    with MockBridge(overrides={"auth": {"flood": {"rate": 5, "burst": burst}}}) as bridge:
        assert bridge.config is not None
        with SipProbe(bridge.sip_host, bridge.sip_port) as attacker:
            started = time.monotonic()
            for _ in range(flood):
                attacker.send(DialIn(attacker, bridge.room_code).invite())
            replies = attacker.collect(1.0)
            elapsed = time.monotonic() - started
        challenged = {r.header("call-id") for r in replies if r.status == 401}
        assert burst <= len(challenged) <= burst + 5 * elapsed + 5, len(challenged)
        assert {r.status for r in replies} == {401}  # the rest get no answer at all
        with SipProbe(bridge.sip_host, bridge.sip_port) as forger:  # made-up credentials
            bogus = 'Authorization: Digest username="x", realm="x", nonce="x", uri="x", ' \
                    'response="00"'
            for _ in range(flood):
                forger.send(DialIn(forger, bridge.room_code).invite(authorization=bogus))
            forged = {r.header("call-id") for r in forger.collect(1.0) if r.status == 401}
        assert burst <= len(forged) <= burst + 5 * (time.monotonic() - started) + 5
        assert bridge.running()
        assert options_ping(bridge.sip_host, bridge.sip_port, "udp") == 200
        with SipProbe(bridge.sip_host, bridge.sip_port) as caller:
            full_call(bridge, caller, DialIn(caller, bridge.room_code))
        room_id = bridge.config.rooms[0].room_id
        assert bridge.peers(room_id) == {}
        assert "new INVITEs dropped" in bridge.log_text()
        assert "Traceback" not in bridge.log_text()


def test_the_default_flood_limit_lets_a_burst_of_callers_through() -> None:
    with MockBridge() as bridge, SipProbe(bridge.sip_host, bridge.sip_port) as probe:
        for _ in range(100):
            probe.send(DialIn(probe, bridge.room_code).invite())
        challenged = {r.header("call-id") for r in probe.collect(1.0) if r.status == 401}
        assert len(challenged) == 100


def test_a_long_join_repeats_the_180_at_the_configured_interval_until_the_answer() -> None:
    delay, repeat = 1.2, 0.3
    with MockBridge(overrides={"timers": {"answer_delay": delay,
                                          "provisional_repeat": repeat}}) as bridge, \
            SipProbe(bridge.sip_host, bridge.sip_port) as probe:
        call = DialIn(probe, bridge.room_code)
        final, seen = authenticated_call(probe, call, bridge.username, bridge.password,
                                         timeout=delay + 3.0)
        assert final is not None and final.status == 200
        ringing = [m for m in seen if m.status == 180]
        # one at once and one per interval while the join lasts: never a flood
        assert delay / repeat - 1 <= len(ringing) <= delay / repeat + 2, len(ringing)
        assert all(m.to_tag == final.to_tag for m in ringing)
        probe.send(call.ack(final))
        assert not [m for m in probe.collect(2 * repeat) if m.status == 180]
        probe.send(call.bye())


def pai_bridge(rx: WebhookReceiver, trusted: list[str]) -> MockBridge:
    return MockBridge(webhook_url=rx.url,
                      overrides={"identity": {"trust_pai": True, "trusted_sources": trusted}})


def joined_names(bridge: MockBridge, rx: WebhookReceiver,
                 calls: list[tuple[str, ...]]) -> list[dict[str, object]]:
    """The join webhook's data of one call per header set, in the order of ``calls``
    (webhooks of different peers may arrive in any order: each call gets its user id)."""
    with SipProbe(bridge.sip_host, bridge.sip_port) as probe:
        for i, headers in enumerate(calls):
            full_call(bridge, probe, DialIn(probe, bridge.room_code),
                      (*headers, f"X-100ms-UserID: call-{i}"))
    rx.wait_count("peer.leave.success", len(calls), timeout=5)
    joins = {e.data["user_id"]: e.data for e in rx.events("peer.join.success")}
    return [joins[f"call-{i}"] for i in range(len(calls))]


PAI = 'P-Asserted-Identity: "Alice Trunk" <sip:+442071234567@trunk.example>'


def test_a_trusted_trunk_names_the_caller_by_p_asserted_identity() -> None:
    with WebhookReceiver() as rx, pai_bridge(rx, ["127.0.0.0/8"]) as bridge:
        joins = joined_names(bridge, rx, [
            (PAI,),
            ("P-Asserted-Identity: <tel:+442071234567>",),
            (PAI, "X-100ms-Display-Name: Bob"),
        ])
    assert [j["user_name"] for j in joins] == ["Alice Trunk", "XXXXXXXX4567", "Bob"]


def test_p_asserted_identity_from_an_untrusted_source_is_ignored() -> None:
    with WebhookReceiver() as rx, pai_bridge(rx, ["10.0.0.0/8", "::1"]) as bridge:
        joins = joined_names(bridge, rx, [(PAI,)])
    assert joins[0]["user_name"] == "XXXXXXX1234"  # DialIn's From number, masked


def test_privacy_id_never_shows_the_number_in_webhooks_or_the_log() -> None:
    with WebhookReceiver() as rx, pai_bridge(rx, ["127.0.0.1"]) as bridge:
        joined_names(bridge, rx, [(PAI, "Privacy: id"), ("Privacy: header;id",)])
        log = bridge.log_text()
    events = rx.events("peer.join.success") + rx.events("peer.leave.success")
    assert len(events) == 4
    assert {e.data["user_name"] for e in events} == {"Anonymous"}
    for text in [json.dumps(e.body) for e in events] + [log]:
        assert not re.search(r"4567|1234", text), text


def run_bridge_command(*args: str, timeout: float = 15.0) -> tuple[int | None, str, str]:
    """Start ``sipharness bridge ARGS`` and return (exit status or None, READY line, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "sipharness", "bridge", *args],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        if line.startswith("READY "):
            return None, line, ""
        proc.wait(timeout=timeout)
        return proc.returncode, line, proc.stderr.read()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_port_0_gives_udp_and_tcp_the_same_free_port() -> None:
    code, ready, _ = run_bridge_command("--port", "0", "--roster-port", "0")
    assert code is None, ready
    info = json.loads(ready[len("READY "):])
    assert info["udp"] == info["tcp"] != 0


def test_tls_transport_without_a_certificate_is_refused_naming_the_field() -> None:
    code, _, err = run_bridge_command("--transport", "tls", "--port", "0")
    assert code == 2
    assert "bridge.yaml" in err and "listen: no SIP listener" in err


TIMER = "Supported: timer"


def timer_bridge() -> MockBridge:
    return MockBridge(overrides={"timers": {"min_se": 2}})


def test_a_session_interval_below_min_se_gets_422_naming_the_minimum() -> None:
    with timer_bridge() as bridge, SipProbe(bridge.sip_host, bridge.sip_port) as probe:
        final, _ = authenticated_call(probe, DialIn(probe, bridge.room_code), bridge.username,
                                      bridge.password, headers=(TIMER, "Session-Expires: 1"))
        assert final is not None and final.status == 422
        assert final.header("min-se") == "2"


def test_an_unrefreshed_session_is_ended_with_bye_before_it_expires() -> None:
    with timer_bridge() as bridge, SipProbe(bridge.sip_host, bridge.sip_port) as probe:
        call = DialIn(probe, bridge.room_code)
        final, _ = authenticated_call(probe, call, bridge.username, bridge.password,
                                      headers=(TIMER, "Session-Expires: 3"))
        assert final is not None and final.status == 200
        assert final.header("session-expires") == "3;refresher=uac"
        assert "timer" in (final.header("require") or "")
        probe.send(call.ack(final))
        answered = time.monotonic()
        bye = next((m for m in probe.collect(4.0) if m.method == "BYE"), None)
        assert bye is not None and "session timer" in (bye.header("reason") or "")
        assert bye.received_at - answered < 3.0  # sent before the session would expire
        assert "reason='session timer expired'" in bridge.log_text()


def test_re_invite_and_update_refresh_the_session() -> None:
    with timer_bridge() as bridge, SipProbe(bridge.sip_host, bridge.sip_port) as probe:
        call = DialIn(probe, bridge.room_code)
        refresh = (TIMER, "Session-Expires: 2")
        final, _ = authenticated_call(probe, call, bridge.username, bridge.password,
                                      headers=refresh)
        assert final is not None and final.status == 200
        probe.send(call.ack(final))
        for method in ("INVITE", "UPDATE", "INVITE"):
            assert not [m for m in probe.collect(0.8) if m.method == "BYE"]
            call.cseq += 1
            probe.send(call.request(method, headers=refresh,
                                    body=call.sdp() if method == "INVITE" else ""))
            ok = probe.wait_status(timeout=2.0)
            assert ok is not None and ok.status == 200, method
            assert ok.header("session-expires") == "2;refresher=uac"
            assert bool(ok.body) == (method == "INVITE")
            if method == "INVITE":
                probe.send(call.ack(ok))
        assert not [m for m in probe.collect(0.8) if m.method == "BYE"]
        probe.send(call.bye())
        assert (bye_ok := probe.wait_status(timeout=2.0)) is not None and bye_ok.status == 200


def test_asked_to_be_the_refresher_the_bridge_sends_update_and_ends_when_it_fails() -> None:
    with timer_bridge() as bridge, SipProbe(bridge.sip_host, bridge.sip_port) as probe:
        call = DialIn(probe, bridge.room_code)
        final, _ = authenticated_call(
            probe, call, bridge.username, bridge.password,
            headers=(TIMER, "Session-Expires: 2;refresher=uas",
                     "Allow: INVITE, ACK, CANCEL, BYE, UPDATE"))
        assert final is not None and final.status == 200
        assert final.header("session-expires") == "2;refresher=uas"
        assert "timer" not in (final.header("require") or "")
        probe.send(call.ack(final))
        answered = time.monotonic()
        updates: list[float] = []
        cseq = 0
        for status, reason in ((200, "OK"), (481, "Call/Transaction Does Not Exist")):
            update = probe.next_request("UPDATE", after_cseq=cseq, timeout=2.0)
            assert update is not None and update.header("session-expires") == "2;refresher=uac"
            cseq = update.cseq[0]
            updates.append(update.received_at - answered)
            probe.send(response_to(update, status, reason))
        assert updates[0] >= 0.5 and updates[1] - updates[0] >= 0.5  # half the interval
        bye = probe.next_request("BYE", after_cseq=cseq, timeout=2.0)
        assert bye is not None and "refresh failed" in (bye.header("reason") or "")

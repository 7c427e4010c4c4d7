"""Bridge behaviour that needs its own configuration: timers, capacity, auth modes, TLS, media,
webhook retries, and a clean stop."""

from __future__ import annotations

import itertools
import socket
import ssl
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sipharness.bridge.media import media_port_in_use
from sipharness.bridge.probe import (
    DialIn,
    SipProbe,
    SipReply,
    answer_challenge,
    authenticated_call,
    send_authenticated_invite,
)
from sipharness.bridge.process import MockBridge
from sipharness.webhooks import WebhookReceiver

pytestmark = pytest.mark.integration


def rtp_port(sdp: str) -> int:
    for line in sdp.splitlines():
        if line.startswith("m=audio "):
            return int(line.split()[1])
    raise AssertionError(f"no audio m-line in {sdp!r}")


def test_sigterm_ends_calls_with_bye_and_delivers_their_leave() -> None:
    with WebhookReceiver() as rx:
        bridge = MockBridge(webhook_url=rx.url).start()
        try:
            with SipProbe(bridge.sip_host, bridge.sip_port) as probe:
                call = DialIn(probe, bridge.room_code)
                final, _ = authenticated_call(probe, call, bridge.username, bridge.password)
                assert final is not None and final.status == 200
                probe.send(call.ack(final))
                rx.wait_for("peer.join.success")
                assert bridge.stop() == 0
                bye = next(m for m in probe.collect(1.0) if m.method == "BYE")
                assert bye.header("reason")
                assert bye.header("call-id") == call.call_id
                assert rx.events("peer.leave.success")[0].data["reason"]
        finally:
            bridge.stop()
            bridge.cleanup()


def test_no_ack_for_the_2xx_ends_the_call_with_bye_after_64_t1() -> None:
    t1 = 0.02
    with WebhookReceiver() as rx, MockBridge(webhook_url=rx.url,
                                             overrides={"timers": {"t1": t1, "t2": 0.16}}
                                             ) as bridge, \
            SipProbe(bridge.sip_host, bridge.sip_port) as probe:
        call = DialIn(probe, bridge.room_code)
        final, _ = authenticated_call(probe, call, bridge.username, bridge.password)
        assert final is not None and final.status == 200
        later: list[SipReply] = []
        deadline = time.monotonic() + 64 * t1 + 1.5
        while not any(m.method == "BYE" for m in later) and time.monotonic() < deadline:
            msg = probe.recv(max(0.0, deadline - time.monotonic()))
            if msg is not None:
                later.append(msg)
        retransmits = [m for m in later if m.status == 200]
        byes = [m for m in later if m.method == "BYE"]
        assert len(retransmits) >= 5
        assert len(byes) == 1
        waited = byes[0].received_at - final.received_at
        assert 64 * t1 * 0.8 < waited < 64 * t1 + 1.0
        assert byes[0].header("reason")
        leave = rx.wait_for("peer.leave.success")
        assert leave.data["reason"] == "no ACK"


def test_2xx_retransmissions_stop_at_the_ack() -> None:
    with MockBridge(overrides={"timers": {"t1": 0.05, "t2": 0.4}}) as bridge, \
            SipProbe(bridge.sip_host, bridge.sip_port) as probe:
        call = DialIn(probe, bridge.room_code)
        final, _ = authenticated_call(probe, call, bridge.username, bridge.password)
        assert final is not None and final.status == 200
        for _ in range(3):
            again = probe.wait_status(timeout=1.0)
            assert again is not None and again.status == 200
        probe.send(call.ack(final))
        probe.collect(0.05)
        assert [m for m in probe.collect(0.9) if m.status == 200] == []
        probe.send(call.bye())
        assert (probe.wait_status() or final).status == 200


def test_capacity_refuses_with_the_configured_status_and_retry_after() -> None:
    with MockBridge(overrides={"capacity": {"max_calls": 1, "status": 486,
                                            "retry_after": 7}}) as bridge, \
            SipProbe(bridge.sip_host, bridge.sip_port) as first, \
            SipProbe(bridge.sip_host, bridge.sip_port) as second:
        call = DialIn(first, bridge.room_code)
        final, _ = authenticated_call(first, call, bridge.username, bridge.password)
        assert final is not None and final.status == 200
        first.send(call.ack(final))
        other = DialIn(second, bridge.room_code)
        busy, _ = authenticated_call(second, other, bridge.username, bridge.password)
        assert busy is not None and busy.status == 486
        assert busy.header("retry-after") == "7"
        first.send(call.bye())
        assert (first.wait_status() or busy).status == 200
        again = DialIn(second, bridge.room_code)
        ok, _ = authenticated_call(second, again, bridge.username, bridge.password)
        assert ok is not None and ok.status == 200


def test_expired_nonce_gets_a_stale_challenge_then_the_retry_succeeds() -> None:
    with MockBridge(overrides={"auth": {"nonce_lifetime": 0.3}}) as bridge, \
            SipProbe(bridge.sip_host, bridge.sip_port) as probe:
        call = DialIn(probe, bridge.room_code)
        challenge, _ = send_authenticated_invite(probe, call, bridge.username, bridge.password,
                                                 wait_before_answer=0.5)
        assert challenge is not None and challenge.status == 401
        stale = probe.wait_status()
        assert stale is not None and stale.status == 401
        fresh = stale.header("www-authenticate") or ""
        assert "stale=true" in fresh.lower()
        answer_challenge(probe, call, stale, bridge.username, bridge.password)
        final = probe.wait_status()
        assert final is not None and final.status == 200


def test_proxy_mode_challenges_with_407_and_accepts_proxy_authorization() -> None:
    with MockBridge(overrides={"auth": {"mode": "407"}}) as bridge, \
            SipProbe(bridge.sip_host, bridge.sip_port) as probe:
        call = DialIn(probe, bridge.room_code)
        final, seen = authenticated_call(probe, call, bridge.username, bridge.password)
        assert seen[0].status == 407 and seen[0].header("proxy-authenticate")
        assert seen[0].header("www-authenticate") is None
        assert final is not None and final.status == 200


@pytest.mark.parametrize(("pick", "qop"), [("SHA-256", True), ("MD5", True), ("MD5", False)])
def test_challenges_offer_each_algorithm_in_order_and_each_is_verified(pick: str,
                                                                       qop: bool) -> None:
    with MockBridge(overrides={"auth": {"algorithms": ["SHA-256", "MD5"]}}) as bridge, \
            SipProbe(bridge.sip_host, bridge.sip_port) as probe:
        call = DialIn(probe, bridge.room_code)
        challenge, sent = send_authenticated_invite(probe, call, bridge.username,
                                                    bridge.password, algorithm=pick, qop=qop)
        assert challenge is not None
        offered = challenge.header_values("www-authenticate")
        assert ["algorithm=SHA-256" in offered[0], "algorithm=MD5" in offered[1]] == [True, True]
        assert sent is not None and f"algorithm={pick}," in sent and ("qop=auth" in sent) == qop
        final = probe.wait_status()
        assert final is not None and final.status == 200


def test_calls_over_tls(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(cert_path), append=True)
    cert.private_key_pem.write_to_path(str(key_path))
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    with MockBridge(transports=("udp", "tls"), tls_cert=cert_path, tls_key=key_path) as bridge:
        assert bridge.tls_port is not None
        with SipProbe(bridge.sip_host, bridge.tls_port, "tls", client_ctx) as probe:
            call = DialIn(probe, bridge.room_code)
            final, _ = authenticated_call(probe, call, bridge.username, bridge.password)
            assert final is not None and final.status == 200
            assert "transport=tls" in (final.header("contact") or "")
            probe.send(call.ack(final))
            probe.send(call.bye())
            bye_ok = probe.wait_status()
            assert bye_ok is not None and bye_ok.status == 200


def test_rtp_is_echoed_to_its_source_and_the_port_is_freed_after_bye() -> None:
    with MockBridge() as bridge, SipProbe(bridge.sip_host, bridge.sip_port) as probe, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp:
        rtp.bind(("127.0.0.1", 0))
        call = DialIn(probe, bridge.room_code, rtp_port=rtp.getsockname()[1] + 2)
        final, _ = authenticated_call(probe, call, bridge.username, bridge.password)
        assert final is not None and final.status == 200
        probe.send(call.ack(final))
        port = rtp_port(final.body)
        packet = struct.pack("!BBHII", 0x80, 0, 7, 160, 0x1234) + b"\xff" * 160
        rtp.settimeout(1.0)
        rtp.sendto(packet, ("127.0.0.1", port))
        echoed, source = rtp.recvfrom(2048)
        assert echoed == packet and source[1] == port
        probe.send(call.bye())
        assert (probe.wait_status() or final).status == 200
        deadline = time.monotonic() + 2.0
        while media_port_in_use(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not media_port_in_use(port)


def test_a_call_without_rtp_is_ended_with_bye_and_reason() -> None:
    with WebhookReceiver() as rx, MockBridge(webhook_url=rx.url,
                                             overrides={"media": {"rtp_timeout": 0.6}}
                                             ) as bridge, \
            SipProbe(bridge.sip_host, bridge.sip_port) as probe, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp:
        rtp.bind(("127.0.0.1", 0))
        call = DialIn(probe, bridge.room_code, rtp_port=rtp.getsockname()[1])
        final, _ = authenticated_call(probe, call, bridge.username, bridge.password)
        assert final is not None and final.status == 200
        probe.send(call.ack(final))
        port = rtp_port(final.body)
        packet = struct.pack("!BBHII", 0x80, 0, 1, 160, 0x99) + b"\xff" * 160
        for _ in range(8):
            rtp.sendto(packet, ("127.0.0.1", port))
            assert probe.recv(0.1) is None
        bye = probe.recv(2.0)
        assert bye is not None and bye.method == "BYE"
        assert "no RTP" in (bye.header("reason") or "")
        waited = bye.received_at - final.received_at
        assert waited > 0.8 + 0.6 * 0.8
        assert rx.wait_for("peer.leave.success").data["reason"] == "rtp timeout"


def test_tone_mode_sends_rtp_every_20_ms_to_the_offered_address() -> None:
    with MockBridge(overrides={"media": {"mode": "tone"}}) as bridge, \
            SipProbe(bridge.sip_host, bridge.sip_port) as probe, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp:
        rtp.bind(("127.0.0.1", 0))
        call = DialIn(probe, bridge.room_code, rtp_port=rtp.getsockname()[1])
        final, _ = authenticated_call(probe, call, bridge.username, bridge.password)
        assert final is not None and final.status == 200
        probe.send(call.ack(final))
        rtp.settimeout(1.0)
        stamps, seqs = [], []
        for _ in range(10):
            data = rtp.recv(2048)
            stamps.append(struct.unpack("!I", data[4:8])[0])
            seqs.append(struct.unpack("!H", data[2:4])[0])
            assert data[1] & 0x7F == 0 and len(data) == 12 + 160
            assert len(set(data[12:])) > 1
        assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))
        assert all(b - a == 160 for a, b in itertools.pairwise(stamps))
        probe.send(call.bye())
        probe.wait_status()


def test_failed_webhooks_are_retried_with_the_same_envelope_id() -> None:
    with WebhookReceiver() as rx:
        rx.fail_next(2)
        with MockBridge(webhook_url=rx.url) as bridge, \
                SipProbe(bridge.sip_host, bridge.sip_port) as probe:
            call = DialIn(probe, bridge.room_code)
            final, _ = authenticated_call(probe, call, bridge.username, bridge.password)
            assert final is not None and final.status == 200
            probe.send(call.ack(final))
            join = rx.wait_for("peer.join.success", timeout=6.0)
            attempts = [d for d in rx.deliveries() if d.id == join.id]
            assert [d.status for d in attempts] == [500, 500, 200]
            first, second, third = (d.received_at for d in attempts)
            assert 0.7 < second - first < 1.6
            assert 1.5 < (third - first) / (second - first) < 4.5
            probe.send(call.bye())
            probe.wait_status()
        assert len(rx.events("peer.join.success")) == 1
        assert len(rx.events("peer.leave.success")) == 1


def test_invalid_config_fails_at_start_naming_file_field_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bridge.yaml"
    path.write_text("rooms:\n  - room_code: a\n    room_id: x\n  - room_code: b\n    room_id: 7\n")
    done = subprocess.run([sys.executable, "-m", "sipharness", "bridge", "--config", str(path)],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert f"{path}:5: rooms[1].room_id: expected a string" in done.stderr


def test_list_faults_describes_every_fault() -> None:
    from sipharness.bridge.faults import FAULTS

    done = subprocess.run([sys.executable, "-m", "sipharness", "bridge", "--list-faults"],
                          capture_output=True, text=True, timeout=30, check=True)
    for name in FAULTS:
        assert name in done.stdout

"""Bad input never crashes or hangs the bridge: RFC 4475 torture messages, malformed, oversized
and truncated datagrams, broken TCP streams. After each batch the bridge answers OPTIONS."""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipharness.bridge.probe import DialIn, SipProbe, options_ping
from sipharness.bridge.process import MockBridge

pytestmark = pytest.mark.integration

TORTURE = Path(__file__).resolve().parents[2] / "fixtures" / "rfc4475"

# Messages whose answer comes back to the sender (the others are answered at their Via
# address, which is not ours, or are silently dropped as RFC 4475 allows).
EXPECTED = {
    "badinv01.dat": 400, "badvers.dat": 505, "baddn.dat": 400, "clerr.dat": 400,
    "insuf.dat": 400, "ltgtruri.dat": 400, "mcl01.dat": 400, "mismatch01.dat": 400,
    "multi01.dat": 400, "ncl.dat": 400, "novelsc.dat": 416, "quotbal.dat": 400,
    "scalar02.dat": 400, "unkscm.dat": 416,
}


@pytest.fixture(scope="module")
def bridge() -> Iterator[MockBridge]:
    with MockBridge() as b:
        yield b


def assert_alive(bridge: MockBridge) -> None:
    assert bridge.running()
    assert options_ping(bridge.sip_host, bridge.sip_port, "udp") == 200
    assert options_ping(bridge.sip_host, bridge.sip_port, "tcp") == 200


def test_rfc4475_messages_get_their_answer_and_the_bridge_stays_up(bridge: MockBridge) -> None:
    files = sorted(TORTURE.glob("*.dat"))
    assert len(files) == 49
    answers: dict[str, int | None] = {}
    for path in files:
        with SipProbe(bridge.sip_host, bridge.sip_port) as probe:
            probe.send(path.read_bytes())
            reply = probe.recv(0.25) if path.name in EXPECTED else None
            answers[path.name] = reply.status if reply else None
    assert {n: answers[n] for n in EXPECTED} == EXPECTED
    assert_alive(bridge)
    assert "Traceback" not in bridge.log_text()


def test_rfc4475_messages_over_tcp_do_not_break_the_listener(bridge: MockBridge) -> None:
    for path in sorted(TORTURE.glob("*.dat")):
        with SipProbe(bridge.sip_host, bridge.sip_port, "tcp") as probe:
            probe.send(path.read_bytes())
            probe.recv(0.05)
    assert_alive(bridge)


@pytest.mark.parametrize("payload", [
    b"",
    b"\r\n\r\n",
    b"\x00" * 64,
    b"garbage that is not SIP at all, but long enough to be parsed",
    b"INVITE sip:abc-defg-hij@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4",
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\n\r\n",
    b"SIP/2.0 99999999999 Nope\r\nVia: x\r\nCall-ID: 1\r\nCSeq: 1 INVITE\r\n\r\n",
    os.urandom(1400),
    b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\n" + b"X-Long: " + b"a" * 60000 + b"\r\n\r\n",
], ids=["empty", "crlf", "nul", "garbage", "truncated", "stray-response", "bigcode",
        "random", "oversized"])
def test_malformed_datagrams_are_answered_or_dropped(bridge: MockBridge,
                                                     payload: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(payload, (bridge.sip_host, bridge.sip_port))
    assert_alive(bridge)


def test_invite_without_via_is_dropped_and_one_without_call_id_gets_400(
        bridge: MockBridge) -> None:
    with SipProbe(bridge.sip_host, bridge.sip_port) as probe:
        call = DialIn(probe, bridge.room_code)
        text = call.invite()
        no_call_id = "\r\n".join(line for line in text.split("\r\n")
                                 if not line.startswith("Call-ID"))
        probe.send(no_call_id)
        reply = probe.wait_status(timeout=1.0)
        assert reply is not None and reply.status == 400
        no_via = "\r\n".join(line for line in text.split("\r\n") if not line.startswith("Via"))
        probe.send(no_via)
        assert probe.recv(0.3) is None
    assert_alive(bridge)


def test_a_large_invite_over_udp_and_tcp_is_accepted(bridge: MockBridge) -> None:
    extra = tuple(f"X-Trunk-Header-{i}: {'v' * 60}" for i in range(30))
    for transport in ("udp", "tcp"):
        with SipProbe(bridge.sip_host, bridge.sip_port, transport) as probe:
            call = DialIn(probe, bridge.room_code)
            text = call.invite(headers=extra)
            assert len(text) > 1300
            probe.send(text)
            reply = probe.wait_status()
            assert reply is not None and reply.status == 401


def test_tcp_stream_with_a_negative_content_length_is_closed(bridge: MockBridge) -> None:
    with socket.create_connection((bridge.sip_host, bridge.sip_port), timeout=2.0) as sock:
        sock.sendall((TORTURE / "ncl.dat").read_bytes())
        sock.settimeout(2.0)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert data == b"" or data.startswith(b"SIP/2.0 400")
    assert_alive(bridge)


def test_mutated_requests_never_silence_the_bridge(bridge: MockBridge) -> None:
    rng = random.Random(4475)
    tokens = [b"\r\n", b";", b",", b":", b"<", b">", b'"', b" ", b"%", b"\x00", b"=", b"\t"]

    def mutate(data: bytes) -> bytes:
        out = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            i = rng.randrange(len(out))
            roll = rng.random()
            if roll < 0.3:
                out[i] = rng.randrange(256)
            elif roll < 0.5:
                del out[i:i + rng.randint(1, 20)]
            elif roll < 0.8:
                out[i:i] = rng.choice(tokens)
            else:
                j = rng.randrange(len(out))
                out[i:i] = out[j:j + rng.randint(1, 40)]
        return bytes(out)

    with SipProbe(bridge.sip_host, bridge.sip_port) as probe:
        call = DialIn(probe, bridge.room_code)
        seeds = [call.invite().encode(), call.request("OPTIONS").encode(),
                 call.request("BYE", to_tag="x").encode(), call.cancel().encode(),
                 call.request("INVITE", to_tag="x", body=call.sdp()).encode()]
        for n in range(400):
            probe.send(mutate(rng.choice(seeds)))
            if n % 50 == 49:
                probe.collect(0.01)
                assert options_ping(bridge.sip_host, bridge.sip_port) == 200, f"after {n + 1}"
    assert_alive(bridge)

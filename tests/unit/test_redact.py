"""Credential redaction of messages, free text and pcaps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP, defragment, fragment
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import rdpcap, wrpcap

from sipharness.capture import read_pcap
from sipharness.report.redact import (
    forget_secrets,
    redact_message,
    redact_pcap,
    redact_text,
    register_secret,
)
from sipharness.sip.message import parse_message

RESPONSE = "6629fae49393a05397450978507c4ef1"
CNONCE = "0a4f113b"
PASSWORD = "s3cr3t-Pa55"


def invite(auth_header: str = "Authorization", body: bytes = b"v=0\r\n") -> bytes:
    return (
        "INVITE sip:abc-defg-hij@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport\r\n"
        "From: <sip:alice@127.0.0.1>;tag=1\r\nTo: <sip:abc-defg-hij@127.0.0.1>\r\n"
        "Call-ID: c1\r\nCSeq: 2 INVITE\r\n"
        f'{auth_header}: Digest username="alice", realm="bridge", nonce="n0nce",\r\n'
        f' uri="sip:abc-defg-hij@127.0.0.1", response="{RESPONSE}", algorithm=MD5,\r\n'
        f" cnonce={CNONCE}, qop=auth, nc=00000001\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


@pytest.fixture(autouse=True)
def _no_secrets() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


@pytest.mark.parametrize("header", ["Authorization", "Proxy-Authorization", "AUTHORIZATION"])
def test_digest_secrets_redacted_rest_untouched(header: str) -> None:
    data = invite(header)
    out = redact_message(data)
    assert RESPONSE.encode() not in out and CNONCE.encode() not in out
    assert out.count(b"[REDACTED]") == 2
    msg = parse_message(out)
    value = msg.header(header)
    assert value is not None and 'username="alice"' in value and 'nonce="n0nce"' in value
    assert msg.header("Content-Length") == "5" and msg.body == b"v=0\r\n"
    assert out.replace(b'"[REDACTED]"', b"").replace(b"[REDACTED]", b"") != data
    untouched = invite(header).split(f"{header}:".encode())[0]
    assert out.startswith(untouched)


def test_message_without_credentials_is_returned_unchanged() -> None:
    data = invite("X-Not-Auth")
    assert redact_message(data) == data


def test_registered_secret_removed_everywhere_and_content_length_fixed() -> None:
    register_secret(PASSWORD)
    body = f"password={PASSWORD}\r\n".encode()
    out = redact_message(invite(body=body))
    assert PASSWORD.encode() not in out
    msg = parse_message(out)
    assert msg.body == b"password=[REDACTED]\r\n"
    assert msg.header("Content-Length") == str(len(msg.body))
    assert redact_text(f"login alice/{PASSWORD} failed") == "login alice/[REDACTED] failed"


def test_keep_length_variant_for_pcaps() -> None:
    data = invite()
    out = redact_message(data, keep_length=True)
    assert len(out) == len(data) and RESPONSE.encode() not in out and CNONCE.encode() not in out


def test_redact_text_handles_log_lines_and_other_schemes() -> None:
    line = f'12:00 sent Authorization: Digest username="a", response="{RESPONSE}", cnonce="x1"'
    out = redact_text(line)
    assert RESPONSE not in out and 'cnonce="[REDACTED]"' in out and 'username="a"' in out
    bearer = redact_message(b"OPTIONS sip:x SIP/2.0\r\nAuthorization: Bearer abc.def.ghi\r\n\r\n")
    assert b"abc.def.ghi" not in bearer and b"Bearer [REDACTED]" in bearer


def test_redact_pcap_udp_fragments_and_tcp(tmp_path: Path) -> None:
    register_secret(PASSWORD)
    plain = (
        Ether() / IP(src="127.0.0.1", dst="127.0.0.2") / UDP(sport=5070, dport=5060) / Raw(invite())
    )
    big_body = (f"password={PASSWORD}\r\n" + "a=x-pad:" + "z" * 1600 + "\r\n").encode()
    frags = [
        Ether() / f
        for f in fragment(
            IP(src="127.0.0.1", dst="127.0.0.2")
            / UDP(sport=5070, dport=5060)
            / Raw(invite(body=big_body)),
            fragsize=800,
        )
    ]
    stream = invite()
    cut = stream.index(RESPONSE.encode()) + 10  # the response value spans two segments
    tcp = [
        Ether()
        / IP(src="127.0.0.1", dst="127.0.0.2")
        / TCP(sport=40000, dport=5060, flags="PA", seq=1 + a)
        / Raw(stream[a:b])
        for a, b in ((0, cut), (cut, len(stream)))
    ]
    packets = [plain, *frags, *tcp]
    for i, p in enumerate(packets):
        p.time = 1.0 + i * 0.01
    src, dst = tmp_path / "in.pcap", tmp_path / "out.pcap"
    wrpcap(str(src), packets)
    # rewritten: the plain datagram, the first fragment (headers, password, UDP checksum;
    # the later fragments hold only padding) and both TCP segments
    assert len(frags) == 3
    assert redact_pcap(src, dst) == 1 + 1 + 2
    raw = dst.read_bytes()
    for secret in (RESPONSE, CNONCE, PASSWORD, RESPONSE[:10], RESPONSE[10:]):
        assert secret.encode() not in raw
    out = rdpcap(str(dst))
    assert [len(p) for p in out] == [len(p) for p in packets]
    assert [float(p.time) for p in out] == pytest.approx([float(p.time) for p in packets])
    for p in out:  # checksums were recomputed
        if UDP in p and p[IP].frag == 0 and not p[IP].flags.MF:
            again = p.__class__(bytes(p))
            del again[UDP].chksum
            assert again.__class__(bytes(again))[UDP].chksum == p[UDP].chksum
    whole = next(p for p in defragment(out[1 : 1 + len(frags)]) if UDP in p)
    recomputed = whole.copy()
    del recomputed[UDP].chksum
    assert IP(bytes(recomputed[IP]))[UDP].chksum == whole[UDP].chksum
    trace = read_pcap(dst)
    assert [p.transport for p in trace.sip] == ["UDP", "UDP", "TCP"]
    assert trace.sip[1].fragmented
    assert all(p.message is not None for p in trace.sip)


def test_attached_pcap_is_the_redacted_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import allure

    from sipharness.capture.attach import attach_capture

    pcap = tmp_path / "call.pcap"
    pkt = (
        Ether() / IP(src="127.0.0.1", dst="127.0.0.2") / UDP(sport=5070, dport=5060) / Raw(invite())
    )
    wrpcap(str(pcap), [pkt])
    attached: dict[str, bytes] = {}

    class FakeAttach:
        """Stands in for ``allure.attach`` (callable, with ``.file``)."""

        def __call__(self, body: str, name: str, attachment_type: object) -> None:
            attached[name] = body.encode()

        def file(self, source: str, name: str, attachment_type: object) -> None:
            attached[name] = Path(source).read_bytes()

    monkeypatch.setattr(allure, "attach", FakeAttach())
    attach_capture(pcap, name="call")
    assert set(attached) == {"call.pcap", "call ladder", "call ladder (text)"}
    assert RESPONSE.encode() in pcap.read_bytes()  # the original is left alone
    for body in attached.values():
        assert RESPONSE.encode() not in body and CNONCE.encode() not in body
    assert b"INVITE (CSeq 2)" in attached["call ladder (text)"]

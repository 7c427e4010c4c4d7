"""Screening of raw requests: which get 400/416/505 and which pass to sippy."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipharness.bridge.framing import FramingError, frame_messages
from sipharness.bridge.precheck import check_request, error_response

TORTURE = Path(__file__).resolve().parents[2] / "fixtures" / "rfc4475"
GOOD = (
    "OPTIONS sip:abc@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n"
    "Max-Forwards: 70\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:abc@127.0.0.1>\r\nCall-ID: x\r\n"
    "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
)


@pytest.mark.parametrize("name", ["wsinv.dat", "esc01.dat", "lwsdisp.dat", "longreq.dat",
                                  "semiuri.dat", "transports.dat", "bext01.dat", "invut.dat",
                                  "intmeth.dat", "dblreq.dat", "escnull.dat"])
def test_valid_torture_messages_pass(name: str) -> None:
    assert check_request((TORTURE / name).read_bytes(), datagram=True) is None


@pytest.mark.parametrize(("name", "status"), [
    ("badinv01.dat", 400), ("clerr.dat", 400), ("ncl.dat", 400), ("scalar02.dat", 400),
    ("quotbal.dat", 400), ("ltgtruri.dat", 400), ("badvers.dat", 505), ("mismatch01.dat", 400),
    ("insuf.dat", 400), ("unkscm.dat", 416), ("multi01.dat", 400), ("mcl01.dat", 400),
    ("baddn.dat", 400)])
def test_invalid_torture_messages_are_refused(name: str, status: int) -> None:
    rejection = check_request((TORTURE / name).read_bytes(), datagram=True)
    assert rejection is not None and rejection.status == status


def test_truncated_body_is_400_over_udp_only() -> None:
    data = GOOD.replace("Content-Length: 0", "Content-Length: 50").encode()
    assert check_request(data, datagram=True) is not None
    assert check_request(data, datagram=False) is None


def test_error_response_copies_the_dialog_headers_and_adds_a_to_tag() -> None:
    resp = error_response(GOOD.encode(), 400, "Bad Request", "abc").decode()  # type: ignore
    assert resp.startswith("SIP/2.0 400 Bad Request\r\n")
    assert "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n" in resp
    assert "To: <sip:abc@127.0.0.1>;tag=abc\r\n" in resp and "CSeq: 1 OPTIONS" in resp
    assert error_response(GOOD.replace("OPTIONS", "ACK").encode(), 400, "x", "t") is None


def test_stream_framing_by_content_length() -> None:
    body = "v=0\r\n"
    msg = GOOD.replace("Content-Length: 0", f"Content-Length: {len(body)}") + body
    buffer = bytearray(b"\r\n\r\n" + (msg * 2).encode() + msg.encode()[:20])
    assert frame_messages(buffer) == [msg.encode(), msg.encode()]
    assert bytes(buffer) == msg.encode()[:20]
    with pytest.raises(FramingError):
        frame_messages(bytearray(GOOD.replace("Content-Length: 0", "l: -5").encode()))


def test_error_response_fills_an_empty_rport_with_the_source() -> None:
    data = GOOD.replace("branch=z9hG4bK1", "branch=z9hG4bK1;rport").encode()
    resp = error_response(data, 400, "Bad", "t", source=("127.0.0.9", 5999))
    assert resp is not None
    assert b"branch=z9hG4bK1;rport=5999;received=127.0.0.9\r\n" in resp

"""SDP parsing and writing (RFC 4566) and the RFC 3264 offer/answer checks."""

from __future__ import annotations

import contextlib
import random

import pytest

from sipharness.sip.grammar import SipParseError
from sipharness.sip.sdp import (
    Codec,
    MediaDescription,
    NoCommonCodec,
    RtpMap,
    SessionDescription,
    check_answer,
    make_answer,
    make_offer,
)

TWILIO_OFFER = (
    b"v=0\r\n"
    b"o=root 1234567 1234567 IN IP4 54.172.60.1\r\n"
    b"s=Twilio Media Gateway\r\n"
    b"c=IN IP4 54.172.60.1\r\n"
    b"t=0 0\r\n"
    b"a=sendrecv\r\n"
    b"m=audio 12552 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"m=video 0 RTP/AVP 31\r\n"
)


def test_parse_and_round_trip() -> None:
    sdp = SessionDescription.parse(TWILIO_OFFER)
    assert sdp.to_bytes() == TWILIO_OFFER
    assert sdp.origin == ["root", "1234567", "1234567", "IN", "IP4", "54.172.60.1"]
    audio, video = sdp.media
    assert (audio.media, audio.port, audio.proto, audio.formats) == (
        "audio", 12552, "RTP/AVP", ["0", "8", "101"],
    )  # fmt: skip
    assert audio.rtpmap == {
        "0": RtpMap("PCMU", 8000),
        "8": RtpMap("PCMA", 8000),
        "101": RtpMap("telephone-event", 8000),
    }
    assert audio.fmtp == {"101": "0-16"}
    assert audio.codec_names() == ["PCMU", "PCMA", "telephone-event"]
    assert audio.ptime == 20
    assert audio.direction is None and sdp.direction(audio) == "sendrecv"
    assert sdp.connection_address(audio) == "54.172.60.1"
    assert video.port == 0


def test_lf_only_sdp_round_trips() -> None:
    data = TWILIO_OFFER.replace(b"\r\n", b"\n")
    assert SessionDescription.parse(data).to_bytes() == data


def test_media_level_direction_and_connection_win() -> None:
    sdp = SessionDescription.parse(
        b"v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nt=0 0\r\na=sendonly\r\n"
        b"m=audio 4000/2 RTP/AVP 111\r\nc=IN IP6 ::2\r\na=rtpmap:111 opus/48000/2\r\na=inactive\r\n"
        b"m=audio 5000 RTP/AVP 0\r\n"
    )
    first, second = sdp.media
    assert sdp.direction(first) == "inactive" and sdp.direction(second) == "sendonly"
    assert sdp.connection_address(first) == "::2" and sdp.connection_address(second) is None
    assert first.port_count == 2 and first.rtpmap["111"] == RtpMap("opus", 48000, 2)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"o=- 1 1 IN IP4 h\r\n", "v=0"),
        (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nnot sdp\r\n", "line 5"),
        (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio x RTP/AVP 0\r\n", "m-line"),
        (b"v=0\r\ns=-\r\nt=0 0\r\n", "no o="),
    ],
)
def test_malformed_sdp(data: bytes, words: str) -> None:
    with pytest.raises(SipParseError, match=words):
        SessionDescription.parse(data)


def test_make_offer() -> None:
    offer = make_offer("127.0.0.1", 40000, session_id=42)
    assert offer.to_bytes() == (
        b"v=0\r\n"
        b"o=- 42 42 IN IP4 127.0.0.1\r\n"
        b"s=-\r\n"
        b"c=IN IP4 127.0.0.1\r\n"
        b"t=0 0\r\n"
        b"m=audio 40000 RTP/AVP 0 8 101\r\n"
        b"a=rtpmap:0 PCMU/8000\r\n"
        b"a=rtpmap:8 PCMA/8000\r\n"
        b"a=rtpmap:101 telephone-event/8000\r\n"
        b"a=fmtp:101 0-16\r\n"
        b"a=ptime:20\r\n"
        b"a=sendrecv\r\n"
    )
    assert SessionDescription.parse(offer.to_bytes()) == offer


def test_make_offer_codecs_and_ipv6() -> None:
    offer = make_offer(
        "::1",
        40002,
        ("opus", "G722", Codec("AMR", 97, 8000, fmtp="octet-align=1")),
        "sendonly",
        None,
    )
    (audio,) = offer.media
    assert audio.formats == ["111", "9", "97"]
    assert audio.codec_names() == ["opus", "G722", "AMR"]
    assert audio.rtpmap["111"] == RtpMap("opus", 48000, 2)
    assert audio.fmtp["97"] == "octet-align=1"
    assert offer.direction(audio) == "sendonly" and audio.ptime is None
    assert offer.connection == "IN IP6 ::1"
    assert make_offer("h", 1).origin[1] != make_offer("h", 1).origin[1]
    with pytest.raises(ValueError, match="unknown codec"):
        make_offer("h", 1, ("speex",))


def test_make_answer_follows_rfc3264() -> None:
    offer = SessionDescription.parse(TWILIO_OFFER)
    answer = make_answer(offer, "127.0.0.1", 50000, ["PCMA", "telephone-event"], session_id=7)
    assert check_answer(offer, answer) == []
    audio, video = answer.media
    assert (audio.port, audio.formats) == (50000, ["8", "101"])
    assert audio.fmtp == {"101": "0-16"} and audio.ptime == 20
    assert answer.direction(audio) == "sendrecv"
    assert (video.media, video.port) == ("video", 0)
    assert answer.value("t") == "0 0"


@pytest.mark.parametrize(
    ("offered", "answered"),
    [("sendonly", "recvonly"), ("recvonly", "sendonly"), ("inactive", "inactive")],
)
def test_make_answer_mirrors_direction(offered: str, answered: str) -> None:
    offer = make_offer("127.0.0.1", 40000, direction=offered)
    answer = make_answer(offer, "127.0.0.1", 50000, ["PCMU"])
    assert answer.direction(answer.media[0]) == answered
    assert check_answer(offer, answer) == []


def test_make_answer_without_common_codec() -> None:
    offer = make_offer("127.0.0.1", 40000, ("PCMU", "telephone-event"))
    with pytest.raises(NoCommonCodec):
        make_answer(offer, "127.0.0.1", 50000, ["opus", "telephone-event"])


def _answer(media_lines: str, session: str = "c=IN IP4 10.0.0.1\r\n") -> SessionDescription:
    return SessionDescription.parse(
        ("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\n" + session + "t=0 0\r\n" + media_lines).encode()
    )


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (_answer("m=audio 5000 RTP/AVP 0\r\n"), "answer has 1 m-lines, the offer has 2"),
        (
            _answer("m=video 0 RTP/AVP 31\r\nm=audio 5000 RTP/AVP 0\r\n"),
            "m-line 1: media is video, the offer's is audio",
        ),
        (
            _answer("m=audio 5000 RTP/AVP 18\r\nm=video 0 RTP/AVP 31\r\n"),
            "m-line 1: codec G729 (payload type 18) was not in the offer",
        ),
        (
            _answer(
                "m=audio 5000 RTP/AVP 96\r\na=rtpmap:96 telephone-event/8000\r\n"
                "m=video 0 RTP/AVP 31\r\n"
            ),
            "telephone-event answered as payload type 96; the offer used 101",
        ),
        (
            _answer(
                "m=audio 5000 RTP/AVP 8\r\na=rtpmap:8 opus/48000/2\r\nm=video 0 RTP/AVP 31\r\n"
            ),
            "payload type 8 is opus in the answer but PCMA in the offer",
        ),
        (
            _answer("m=audio 5000 RTP/AVP 101\r\nm=video 0 RTP/AVP 31\r\n"),
            "only telephone-event",
        ),
        (
            _answer("m=audio 5000 RTP/AVP 0 101\r\nm=video 0 RTP/AVP 31\r\n"),
            "dynamic payload type 101 has no a=rtpmap",
        ),
        (
            _answer("m=audio 5000 RTP/AVP 0\r\nm=video 0 RTP/AVP 31\r\n", session=""),
            "m-line 1: no c= line",
        ),
        (
            _answer("m=audio 5000 RTP/SAVP 0\r\nm=video 0 RTP/AVP 31\r\n"),
            "transport is RTP/SAVP, the offer's is RTP/AVP",
        ),
        (
            _answer("m=audio 5000 RTP/AVP 0\r\nm=video 6000 RTP/AVP 31\r\n"),
            "m-line 2: stream refused in the offer (port 0) is accepted",
        ),
        (
            SessionDescription.parse(
                b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 h\r\nt=1 2\r\n"
                b"m=audio 5000 RTP/AVP 0\r\nm=video 0 RTP/AVP 31\r\n"
            ),
            "t= is '1 2', the offer's is '0 0'",
        ),
    ],
)
def test_check_answer_names_rfc3264_problems(answer: SessionDescription, problem: str) -> None:
    offer = SessionDescription.parse(TWILIO_OFFER)
    problems = check_answer(offer, answer)
    assert any(problem in p for p in problems), problems


def test_check_answer_direction() -> None:
    offer = make_offer("127.0.0.1", 40000, direction="sendonly", session_id=1)
    answer = make_answer(offer, "127.0.0.1", 50000, ["PCMU"])
    answer.media[0].lines[-1] = ("a", "sendrecv")
    assert check_answer(offer, answer) == [
        "m-line 1: offer is sendonly, answer is sendrecv (must be inactive or recvonly)"
    ]


def test_accepting_answer_from_a_real_bridge_shape() -> None:
    offer = make_offer("127.0.0.1", 40000, ("PCMU", "PCMA", "telephone-event"), session_id=1)
    answer = SessionDescription.parse(
        b"v=0\r\no=FreeSWITCH 1 2 IN IP4 127.0.0.9\r\ns=FreeSWITCH\r\nc=IN IP4 127.0.0.9\r\n"
        b"t=0 0\r\nm=audio 30000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
        b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n"
    )
    assert check_answer(offer, answer) == []
    assert MediaDescription.build("audio", 0, "RTP/AVP", [0]).lines == [("m", "audio 0 RTP/AVP 0")]


def test_mangled_sdp_only_ever_raises_sip_parse_error() -> None:
    rng = random.Random(4566)
    offer = SessionDescription.parse(TWILIO_OFFER)
    corpus = [TWILIO_OFFER, make_offer("::1", 4000, ("opus", "PCMU", "telephone-event")).to_bytes()]
    pieces = [b"\r\n", b" ", b"/", b":", b"=", b"x", b"0", b"99999999", b"a=", b"m=", b"\xff"]
    parsed = 0
    for _ in range(1500):
        data = bytearray(rng.choice(corpus))
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(data) + 1)
            if rng.random() < 0.5:
                data[pos : pos + rng.randint(0, 5)] = rng.choice(pieces)
            else:
                del data[pos : pos + rng.randint(1, 8)]
        try:
            sdp = SessionDescription.parse(bytes(data))
        except SipParseError:
            continue
        parsed += 1
        for m in sdp.media:
            _ = (m.port, m.port_count, m.rtpmap, m.fmtp, m.ptime, sdp.connection_address(m))
        check_answer(offer, sdp)
        check_answer(sdp, offer)
        with contextlib.suppress(NoCommonCodec):
            make_answer(sdp, "127.0.0.1", 5000, ["PCMU", "telephone-event"])
    assert parsed > 300

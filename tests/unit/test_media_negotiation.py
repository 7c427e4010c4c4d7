"""RTP session parameters from an SDP offer/answer, and sessions built from them."""

from __future__ import annotations

import gevent
import pytest

from sipharness.hostenv import free_port
from sipharness.media.engine import MediaEngine, MediaSession
from sipharness.media.negotiation import MediaNegotiationError, negotiate
from sipharness.sip.sdp import make_answer, make_offer

FAR_END = """v=0\r
o=- 7 7 IN IP4 192.0.2.10\r
s=-\r
c=IN IP4 192.0.2.10\r
t=0 0\r
m=audio 30000 RTP/AVP 8 96\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:96 telephone-event/8000\r
a=ptime:30\r
a=rtcp:30011 IN IP4 192.0.2.11\r
a=rtcp-mux\r
a=sendrecv\r
"""


def test_offerer_sends_what_the_answer_asks_for() -> None:
    offer = make_offer("127.0.0.1", 40000)
    answer = make_answer(offer, "127.0.0.2", 50000, ["PCMA", "telephone-event"])
    media = negotiate(offer, answer)
    assert media.local == ("127.0.0.1", 40000)
    assert media.remote == ("127.0.0.2", 50000)
    assert (media.payload_type, media.codec, media.dtmf_payload_type) == (8, "PCMA", 101)
    assert (media.ptime, media.direction, media.rtcp_mux) == (20, "sendrecv", False)
    assert media.remote_rtcp is None


def test_answerer_sends_to_the_offer() -> None:
    offer = make_offer("127.0.0.1", 40000, codecs=("PCMU", "PCMA"))
    answer = make_answer(offer, "127.0.0.2", 50000, ["PCMA"])
    media = negotiate(answer.to_bytes(), offer.to_bytes())
    assert media.remote == ("127.0.0.1", 40000)
    assert (media.payload_type, media.codec) == (8, "PCMA")  # PCMU is not ours
    assert media.dtmf_payload_type is None  # we did not take telephone-event


@pytest.mark.parametrize(
    ("ours", "theirs", "we_do"),
    [
        ("sendonly", "recvonly", "sendonly"),
        ("recvonly", "sendonly", "recvonly"),
        ("sendrecv", "inactive", "inactive"),
        ("sendrecv", "recvonly", "sendonly"),
    ],
)
def test_direction_is_what_both_allow(ours: str, theirs: str, we_do: str) -> None:
    offer = make_offer("127.0.0.1", 40000, direction=ours)
    answer = make_answer(offer, "127.0.0.2", 50000, ["PCMU"], direction=theirs)
    assert negotiate(offer, answer).direction == we_do


def test_rfc3605_rtcp_address_ptime_and_mux() -> None:
    ours = make_offer("127.0.0.1", 40000, codecs=("PCMA", "telephone-event")).to_bytes()
    ours = ours.replace(b"a=sendrecv", b"a=rtcp-mux\r\na=sendrecv")
    media = negotiate(ours, FAR_END.encode())
    assert media.remote == ("192.0.2.10", 30000)
    assert media.remote_rtcp == ("192.0.2.11", 30011)
    assert (media.ptime, media.dtmf_payload_type, media.rtcp_mux) == (30, 96, True)


def test_refused_stream_and_no_common_codec_are_errors() -> None:
    offer = make_offer("127.0.0.1", 40000)
    refused = make_answer(offer, "127.0.0.2", 50000, ["PCMU"]).to_bytes()
    refused = refused.replace(b"m=audio 50000", b"m=audio 0")
    with pytest.raises(MediaNegotiationError, match="refused"):
        negotiate(offer, refused)
    g729 = FAR_END.replace("8 96", "18").replace("rtpmap:8 PCMA", "rtpmap:18 G729")
    with pytest.raises(MediaNegotiationError, match="G729"):
        negotiate(offer, g729.encode())


def test_sessions_built_from_offer_and_answer_talk() -> None:
    engine = MediaEngine()
    offer = make_offer("127.0.0.1", free_port(), codecs=("PCMU", "telephone-event"))
    answer = make_answer(offer, "127.0.0.1", free_port(), ["PCMU", "telephone-event"])
    caller = MediaSession.from_sdp(engine, offer, answer, rtcp=False)
    callee = MediaSession.from_sdp(engine, answer, offer, rtcp=False)
    try:
        caller.start()
        callee.start()
        caller.send_dtmf("7")
        assert caller.wait_dtmf(timeout=2.0)
        gevent.sleep(0.2)
    finally:
        engine.stop_all()
    report = callee.stats()
    assert report.received.lost == 0 and report.received.received > 5
    assert report.received.dtmf_digits == "7"
    assert caller.stats().received.received > 5


def test_reinvite_moves_media_and_keeps_the_stream_continuous() -> None:
    engine = MediaEngine()
    offer = make_offer("127.0.0.1", free_port(), codecs=("PCMU",))
    first = make_answer(offer, "127.0.0.1", free_port(), ["PCMU"])
    second = make_answer(offer, "127.0.0.1", free_port(), ["PCMU"])
    second_ptime_30 = second.to_bytes().replace(b"a=ptime:20", b"a=ptime:30")
    caller = MediaSession.from_sdp(engine, offer, first, rtcp=False)
    before = MediaSession.from_sdp(engine, first, offer, rtcp=False)
    after = MediaSession.from_sdp(engine, second, offer, rtcp=False)
    try:
        for session in (caller, before, after):
            session.start()
        gevent.sleep(0.2)
        caller.update_from_sdp(offer, second_ptime_30)  # the far end moved its media
        gevent.sleep(0.3)
    finally:
        engine.stop_all()
    assert caller.remote == after.local
    assert caller.ptime == 30 and caller.frame_samples == 240
    got = after.stats().received
    assert got.received > 5 and got.lost == 0
    assert after.received.ssrc == caller.ssrc  # same SSRC after the move
    assert after.received.timestamp_jumps == 0
    assert before.stats().received.received > 5
    # the sequence ran on: packets before the move + packets after = every number sent
    last_before = before.received.highest_sequence & 0xFFFF
    assert (last_before + 1 + after.received.expected) & 0xFFFF == caller.sequence

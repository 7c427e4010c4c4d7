"""The bridge's SDP answer keeps RFC 3264's rules."""

from __future__ import annotations

import pytest

from sipharness.bridge.sdp_answer import Answer, OfferError, build_answer, parse_offer

OFFER = (
    "v=0\r\no=a 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 18 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\na=sendonly\r\n"
    "m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
)


def answer(offer: str = OFFER, codecs: tuple[str, ...] = ("PCMU", "PCMA")) -> Answer:
    return build_answer(parse_offer(offer), codecs=list(codecs), address="127.0.0.1",
                        rtp_port=20000, session_id=7, version=3)


def test_answer_keeps_m_lines_in_order_and_refuses_video_with_port_0() -> None:
    lines = [line for line in answer().sdp.splitlines() if line.startswith("m=")]
    assert lines == ["m=audio 20000 RTP/AVP 8 101", "m=video 0 RTP/AVP 96"]


def test_first_offered_supported_codec_and_telephone_event_are_chosen() -> None:
    ans = answer()
    assert (ans.payload_type, ans.codec) == (8, "PCMA")
    assert "a=rtpmap:101 telephone-event/8000" in ans.sdp and "a=fmtp:101 0-16" in ans.sdp
    assert (ans.remote_address, ans.remote_port) == ("10.0.0.1", 4000)


@pytest.mark.parametrize(("offered", "answered"), [
    ("sendonly", "recvonly"), ("recvonly", "sendonly"), ("inactive", "inactive"),
    ("sendrecv", "sendrecv")])
def test_direction_is_mirrored(offered: str, answered: str) -> None:
    assert f"a={answered}" in answer(OFFER.replace("a=sendonly", f"a={offered}")).sdp


def test_origin_carries_session_and_version() -> None:
    assert "o=sipharness 7 3 IN IP4 127.0.0.1" in answer().sdp


def test_no_common_codec_or_only_srtp_is_488() -> None:
    with pytest.raises(OfferError) as err:
        answer(codecs=("G722",))
    assert err.value.status == 488
    with pytest.raises(OfferError) as err:
        answer(OFFER.replace("RTP/AVP 18 8 0 101", "RTP/SAVP 0"))
    assert err.value.status == 488

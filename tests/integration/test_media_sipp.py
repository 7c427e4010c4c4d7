"""The media engine against SIPp's RTP echo: the numbers the mock bridge's echo must also give."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import gevent
import pytest

from sipharness.media.engine import MediaEngine, MediaSession
from sipharness.media.sipp_echo import SippRtpEcho
from sipharness.media.source import WavSource

pytestmark = [pytest.mark.integration, pytest.mark.sipp]

FIXTURE_WAV = Path(__file__).resolve().parents[2] / "fixtures" / "audio" / "tone-440hz-2s.wav"


@pytest.fixture
def sipp_echo(require_tool: Callable[[str], str]) -> Iterator[SippRtpEcho]:
    with SippRtpEcho(require_tool("sipp"), timeout=60) as echo:
        yield echo


@pytest.fixture
def engine() -> Iterator[MediaEngine]:
    engine = MediaEngine()
    yield engine
    engine.stop_all()


@pytest.mark.parametrize(("codec", "payload_type"), [("PCMU", 0), ("PCMA", 8)])
def test_sipp_echo_gives_zero_loss_and_loopback_latency(
    sipp_echo: SippRtpEcho, engine: MediaEngine, codec: str, payload_type: int
) -> None:
    session = MediaSession(
        engine,
        ("127.0.0.1", 0),
        sipp_echo.address,
        payload_type=payload_type,
        codec=codec,
        dtmf_payload_type=101,
        rtcp_interval=0.5,  # SIPp does not echo RTCP: our reports must not disturb the echo
    )
    with session:
        gevent.sleep(0.5)
        session.send_dtmf("42#")
        assert session.wait_dtmf(timeout=3.0)
        gevent.sleep(0.3)
    report = session.stats()
    assert report.rtp_arrived, report.summary()
    assert report.received.lost == 0, report.summary()
    assert report.received.ssrc_changes == report.received.sequence_jumps == 0
    assert report.received.received >= report.sent.packets - 2  # in flight at stop
    assert report.echoed_packets == report.received.received
    assert report.latency_avg_ms is not None and report.latency_avg_ms < 20.0, report.summary()
    assert report.received.first_packet_ms is not None
    assert report.received.first_packet_ms < 1000  # SDP-07: RTP within 1 s
    assert report.received.dtmf_digits == "42#"
    assert report.mos == pytest.approx(4.41, abs=0.02)


def test_sipp_echo_with_a_wav_source_at_30ms(sipp_echo: SippRtpEcho, engine: MediaEngine) -> None:
    source = WavSource(FIXTURE_WAV)
    session = MediaSession(
        engine, ("127.0.0.1", 0), sipp_echo.address, ptime=30, source=source, rtcp=False
    )
    with session:
        gevent.sleep(0.9)
    report = session.stats()
    assert report.sent.octets == 240 * report.sent.packets
    assert report.received.lost == 0, report.summary()
    assert report.sent.packets == pytest.approx(report.duration_s / 0.030, abs=3)
    assert report.echoed_packets >= report.sent.packets - 2

"""G.711, RTP headers, RFC 4733 events, RTCP, audio sources and the E-model, without sockets."""

from __future__ import annotations

import itertools
import math
import warnings
from pathlib import Path

import pytest

from sipharness.media import g711
from sipharness.media.dtmf import DtmfReceiver, digit_payloads, event_code, parse_event
from sipharness.media.mos import delay_impairment, mos_from, r_factor
from sipharness.media.rtcp import (
    Goodbye,
    ReceiverReport,
    ReportBlock,
    RtcpParseError,
    SenderReport,
    SourceDescription,
    UnknownRtcp,
    ntp_from_unix,
    pack_compound,
    parse_compound,
)
from sipharness.media.rtp import RtpExtension, RtpPacket, RtpParseError, looks_like_rtcp, parse_rtp
from sipharness.media.source import SilenceSource, ToneSource, WavSource, write_wav

FIXTURE_WAV = Path(__file__).resolve().parents[2] / "fixtures" / "audio" / "tone-440hz-2s.wav"


# --- G.711 -----------------------------------------------------------------------------------


def test_g711_known_octets() -> None:
    assert g711.encode([0], "PCMU") == b"\xff"
    assert g711.encode([0], "PCMA") == b"\xd5"
    assert g711.encode([32767, -32768], "PCMU") == b"\x80\x00"
    assert g711.encode([32767, -32768], "PCMA") == b"\xaa\x2a"
    assert g711.decode(b"\xff\x7f", "pcmu") == [0, 0]  # µ-law has two zeros
    assert g711.decode(b"\xd5\x55", "PCMA") == [8, -8]  # A-law has none


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_g711_round_trip_error_is_within_half_a_step(codec: str) -> None:
    samples = list(range(-32768, 32768, 7))
    decoded = g711.decode(g711.encode(samples, codec), codec)
    for sample, value in zip(samples, decoded, strict=True):
        # 4-bit mantissa: the step is 1/16 of the segment, so the error is at most
        # 1/32 of the magnitude (plus the fine steps of the lowest segments).
        assert abs(value - sample) <= max(16, abs(sample) / 16), (codec, sample, value)


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_g711_every_octet_survives_decode_encode(codec: str) -> None:
    octets = bytes(octet for octet in range(256) if not (codec == "PCMU" and octet == 0x7F))
    assert g711.encode(g711.decode(octets, codec), codec) == octets


def test_g711_matches_audioop_bit_for_bit() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # gone in Python 3.13: then only the rest
    samples = list(range(-32768, 32768))
    linear = b"".join(s.to_bytes(2, "little", signed=True) for s in samples)
    assert g711.encode(samples, "PCMU") == audioop.lin2ulaw(linear, 2)
    assert g711.encode(samples, "PCMA") == audioop.lin2alaw(linear, 2)


def test_g711_refuses_other_codecs() -> None:
    with pytest.raises(ValueError, match=r"G\.711"):
        g711.encode([0], "opus")


# --- RTP -------------------------------------------------------------------------------------


def test_rtp_header_layout() -> None:
    packet = RtpPacket(payload_type=0, sequence=1, timestamp=160, ssrc=0x11223344, payload=b"ab")
    assert packet.to_bytes() == bytes.fromhex("80000001000000a011223344") + b"ab"
    marked = RtpPacket(101, 65535, 2**32 - 1, 1, b"", marker=True).to_bytes()
    assert marked[:8] == bytes.fromhex("80e5ffffffffffff")


def test_rtp_round_trip_with_csrc_extension_padding_marker() -> None:
    packet = RtpPacket(
        payload_type=8,
        sequence=4242,
        timestamp=123456789,
        ssrc=0xDEADBEEF,
        payload=b"\x55" * 160,
        marker=True,
        csrcs=(1, 2, 3),
        extension=RtpExtension(0xBEDE, b"\x10\xff\x00\x00"),
        padding=4,
    )
    data = packet.to_bytes()
    assert data[0] == 0x80 | 0x20 | 0x10 | 3
    assert data[-1] == 4
    assert len(data) == 12 + 12 + 4 + 4 + 160 + 4
    assert parse_rtp(data) == packet


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x80\x00\x00", "shorter than the 12-octet"),
        (bytes.fromhex("400000010000000000000001"), "version 1"),
        (bytes.fromhex("830000010000000000000001") + b"\x00" * 4, "CSRCs"),
        (bytes.fromhex("900000010000000000000001") + b"\xbe\xde\x00\x02", "extension"),
        (bytes.fromhex("a00000010000000000000001") + b"\x00\x09", "padding"),
    ],
)
def test_rtp_parse_errors_say_why(data: bytes, reason: str) -> None:
    with pytest.raises(RtpParseError, match=reason):
        parse_rtp(data)


def test_rtcp_is_told_apart_from_rtp() -> None:
    rr = pack_compound([ReceiverReport(1)])
    assert looks_like_rtcp(rr)
    assert not looks_like_rtcp(RtpPacket(0, 1, 2, 3).to_bytes())
    assert not looks_like_rtcp(RtpPacket(101, 1, 2, 3, marker=True).to_bytes())


# --- RFC 4733 --------------------------------------------------------------------------------


def test_digit_packets_follow_rfc4733() -> None:
    # 100 ms digit "5" at 20 ms packets: 4 updates, then the end packet three times.
    packets = digit_payloads("5", duration=800, packet_duration=160)
    events = [parse_event(payload) for payload, _ in packets]
    assert [marker for _, marker in packets] == [True] + [False] * 6
    assert [event.duration for event in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [event.end for event in events] == [False] * 4 + [True] * 3
    assert {(event.event, event.volume) for event in events} == {(5, 10)}
    assert packets[0][0] == bytes.fromhex("050a00a0")
    assert packets[-1][0] == bytes.fromhex("058a0320")


def test_short_digit_is_three_end_packets_the_first_marked() -> None:
    packets = digit_payloads("#", duration=100, packet_duration=160)
    assert [marker for _, marker in packets] == [True, False, False]
    assert all(parse_event(payload).end for payload, _ in packets)


def test_event_codes() -> None:
    assert [event_code(d) for d in "09*#Ad"] == [0, 9, 10, 11, 12, 15]
    with pytest.raises(ValueError, match="not a DTMF digit"):
        event_code("x")


def test_receiver_counts_each_event_once_even_without_its_start() -> None:
    receiver = DtmfReceiver()
    for payload, _ in digit_payloads("7", 800, 160):
        receiver.receive(SSRC := 99, 1600, payload)
    for payload, _ in digit_payloads("9", 800, 160)[3:]:  # start lost on the way
        receiver.receive(SSRC, 3200, payload)
    assert receiver.digits == ["7", "9"]


# --- RTCP ------------------------------------------------------------------------------------


def test_rtcp_compound_round_trip() -> None:
    block = ReportBlock(0xAAAA, 51, -3, 65536 + 17, 42, 0x12345678, 65536)
    sr = SenderReport(0xBBBB, ntp_from_unix(1_700_000_000.5), 160_000, 1000, 160_000, (block,))
    sdes = SourceDescription(((0xBBBB, ((1, "alice@127.0.0.1"), (2, "Alice"))),))
    bye = Goodbye((0xBBBB,), "call ended")
    data = pack_compound([sr, sdes, bye])
    assert len(data) % 4 == 0
    parsed = parse_compound(data)
    assert parsed == [sr, sdes, bye]
    assert parsed[1].cname(0xBBBB) == "alice@127.0.0.1"  # type: ignore[union-attr]
    assert sr.ntp_middle == (sr.ntp_timestamp >> 16) & 0xFFFFFFFF


def test_receiver_report_layout() -> None:
    data = pack_compound([ReceiverReport(0x01020304, (ReportBlock(5, 128, 7, 9, 3),))])
    assert data[:4] == bytes.fromhex("81c90007")  # V=2, RC=1, PT=201, 7 words follow
    assert data[8:16] == bytes.fromhex("0000000580000007")
    assert parse_compound(data) == [ReceiverReport(0x01020304, (ReportBlock(5, 128, 7, 9, 3),))]


def test_rtcp_unknown_types_are_kept() -> None:
    app = UnknownRtcp(204, 1, b"nameDATA")
    assert parse_compound(pack_compound([app])) == [app]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\xc9\x00\x05\x00\x00\x00\x01",
        b"\x40\xc9\x00\x00",
        b"\x81\xc9\x00\x01\x00\x00\x00\x01",
    ],
)
def test_rtcp_parse_errors(data: bytes) -> None:
    with pytest.raises(RtcpParseError):
        parse_compound(data)


# --- sources ---------------------------------------------------------------------------------


def test_tone_frames_have_the_ptime_and_are_distinct() -> None:
    frames = ToneSource((440.0,), cycle_seconds=2.0).frames("PCMU", 160)
    assert len(frames) == 100
    assert {len(frame) for frame in frames} == {160}
    assert len(set(frames)) == 100  # dither makes every frame of the cycle unique
    plain = ToneSource((440.0,), cycle_seconds=2.0, dither=False).frames("PCMU", 160)
    assert plain[0] == plain[5] != plain[1]  # 440 Hz repeats every 100 ms


def test_tone_level_and_frequency() -> None:
    samples = g711.decode(b"".join(ToneSource((1000.0,), -10.0).frames("PCMA", 240)), "PCMA")
    expected_peak = 32767 * 10 ** (-13.17 / 20)
    assert max(samples) == pytest.approx(expected_peak, rel=0.05)
    rising = sum(1 for a, b in itertools.pairwise(samples) if a < 0 <= b)
    assert rising / 2.0 == pytest.approx(1000, abs=2)  # zero crossings per second


def test_silence_is_the_codec_zero() -> None:
    assert SilenceSource().frames("PCMU", 160) == (b"\xff" * 160,)
    assert SilenceSource().frames("PCMA", 80) == (b"\xd5" * 80,)


def test_audio_fixture_is_reproducible_and_playable(tmp_path: Path) -> None:
    remade = tmp_path / "tone.wav"
    write_wav(remade, ToneSource((440.0,), -10.0, 2.0).samples())
    assert FIXTURE_WAV.read_bytes() == remade.read_bytes()
    frames = WavSource(FIXTURE_WAV).frames("PCMU", 240)  # 30 ms ptime
    assert len(frames) == math.ceil(16000 / 240)
    assert frames[-1].endswith(b"\xff" * 80)  # last frame padded with silence
    assert frames[0] == ToneSource((440.0,), -10.0, 2.0, dither=False).frames("PCMU", 240)[0]


def test_wav_of_the_wrong_format_is_refused(tmp_path: Path) -> None:
    import wave

    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(b"\x00" * 64)
    with pytest.raises(ValueError, match="8 kHz mono 16-bit"):
        WavSource(path)


# --- E-model ---------------------------------------------------------------------------------


def test_perfect_g711_scores_about_4_4() -> None:
    assert r_factor(0.0, 0.0, 0.0) == pytest.approx(93.2)
    assert mos_from(0.0, 0.0, 0.0, "PCMU") == pytest.approx(4.41, abs=0.01)


def test_one_percent_loss_by_hand() -> None:
    # Ie_eff = 95 * 1 / (1 + 25.1) = 3.6398; R = 93.2 - 3.6398 = 89.560
    r = 93.2 - 95 / 26.1
    assert r_factor(0.01, 0.0, 0.0, "PCMA") == pytest.approx(r)
    assert mos_from(0.01, 0.0, 0.0) == pytest.approx(
        1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6
    )


def test_delay_impairment_by_hand() -> None:
    assert delay_impairment(100.0) == 0.0
    # Ta = 200 ms: X = 1, Idd = 25 * (2^(1/6) - 3 * (1 + 1/729)^(1/6) + 2)
    expected = 25 * (2 ** (1 / 6) - 3 * (1 + 1 / 729) ** (1 / 6) + 2)
    assert delay_impairment(200.0) == pytest.approx(expected)
    # 10 ms jitter counts as 20 ms of jitter buffer: 180 + 20 = 200 ms
    assert r_factor(0.0, 10.0, 180.0) == pytest.approx(93.2 - expected)


def test_mos_falls_with_loss_latency_and_jitter() -> None:
    by_loss = [mos_from(loss, 0.0, 20.0) for loss in (0.0, 0.005, 0.01, 0.05, 0.2, 0.5)]
    assert by_loss == sorted(by_loss, reverse=True)
    assert len(set(by_loss)) == len(by_loss)
    by_latency = [mos_from(0.0, 0.0, ms) for ms in (150.0, 200.0, 300.0, 400.0, 800.0)]
    assert by_latency == sorted(by_latency, reverse=True)
    assert len(set(by_latency)) == len(by_latency)
    assert mos_from(0.0, 80.0, 100.0) < mos_from(0.0, 5.0, 100.0)
    assert 1.0 <= mos_from(1.0, 500.0, 2000.0) < 1.5
    assert mos_from(0.0, 0.0, 0.0, plc=False) == mos_from(0.0, 0.0, 0.0)
    assert mos_from(0.02, 0.0, 0.0, plc=False) < mos_from(0.02, 0.0, 0.0)

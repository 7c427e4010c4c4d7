"""RTP receive statistics and echo latency against hand-computed packet sequences."""

from __future__ import annotations

import pytest

from sipharness.media.stats import EchoLatency, ReceiveStats, SendStats

SSRC = 0x1234ABCD
PERIOD = 0.020  # 20 ms of G.711 = 160 timestamp units at 8 kHz


def feed(stats: ReceiveStats, sequences: list[int], ssrc: int = SSRC) -> None:
    """Packets with the given sequence numbers, each with the timestamp and arrival its
    sequence number implies (no jitter), in the order given."""
    for sequence in sequences:
        stats.receive(ssrc, sequence, 160 * sequence, PERIOD * sequence)


def test_in_order_stream_has_no_loss() -> None:
    stats = ReceiveStats()
    feed(stats, list(range(10)))
    assert (stats.packets, stats.expected, stats.received, stats.lost) == (10, 10, 10, 0)
    assert stats.loss_ratio == 0.0
    assert stats.out_of_order == stats.duplicates == stats.timestamp_jumps == 0
    assert stats.jitter == pytest.approx(0.0, abs=1e-9)


def test_gaps_are_counted_as_loss() -> None:
    stats = ReceiveStats()
    feed(stats, [0, 1, 2, 4, 5, 8, 9])  # 3, 6 and 7 never arrive
    assert (stats.expected, stats.received, stats.lost) == (10, 7, 3)
    assert stats.loss_ratio == pytest.approx(0.3)


def test_reordered_packet_is_late_not_lost() -> None:
    stats = ReceiveStats()
    feed(stats, [0, 1, 3, 2, 4])
    assert stats.lost == 0
    assert stats.out_of_order == 1
    assert stats.highest_sequence == 4


def test_duplicates_do_not_hide_loss() -> None:
    stats = ReceiveStats()
    feed(stats, [0, 1, 1, 1, 3])  # 2 lost, 1 duplicated twice
    assert stats.packets == 5
    assert stats.duplicates == 2
    assert (stats.expected, stats.received, stats.lost) == (4, 3, 1)


def test_sequence_wrap_continues_the_extended_sequence() -> None:
    stats = ReceiveStats()
    for arrival, sequence in enumerate([65533, 65534, 65535, 0, 1, 2]):
        stats.receive(SSRC, sequence, 160 * arrival, PERIOD * arrival)
    assert (stats.expected, stats.lost, stats.sequence_jumps) == (6, 0, 0)
    assert stats.highest_sequence == 65536 + 2  # one cycle in the upper 16 bits
    assert stats.timestamp_jumps == 0


def test_loss_across_the_wrap() -> None:
    stats = ReceiveStats()
    for arrival, sequence in enumerate([65534, 65535, 1, 2]):
        stats.receive(SSRC, sequence, 160 * arrival, PERIOD * arrival)
    assert (stats.expected, stats.received, stats.lost) == (5, 4, 1)


def test_late_packet_from_before_the_wrap() -> None:
    stats = ReceiveStats()
    for arrival, sequence in enumerate([65535, 1, 0]):
        stats.receive(SSRC, sequence, 160 * arrival, PERIOD * arrival)
    assert stats.lost == 0
    assert stats.out_of_order == 1
    assert stats.highest_sequence == 65537


def test_timestamp_wrap_gives_no_jitter_and_no_jump() -> None:
    stats = ReceiveStats()
    for index, timestamp in enumerate([2**32 - 320, 2**32 - 160, 0, 160, 320]):
        stats.receive(SSRC, 7 + index, timestamp, 1.0 + PERIOD * index)
    assert stats.timestamp_jumps == 0
    assert stats.jitter == pytest.approx(0.0, abs=1e-6)


def test_jitter_follows_rfc3550_a8() -> None:
    # Timestamps 160 apart (20 ms). Packet 2 arrives 5 ms late (25 ms after packet 1),
    # packet 3 on time again (15 ms after packet 2).
    # D(1,2) = 25 ms * 8 - 160 = 40 units: J = 0 + (40 - 0) / 16 = 2.5
    # D(2,3) = 15 ms * 8 - 160 = -40 units: J = 2.5 + (40 - 2.5) / 16 = 4.84375
    stats = ReceiveStats()
    stats.receive(SSRC, 0, 0, 0.000)
    stats.receive(SSRC, 1, 160, 0.020)
    assert stats.jitter == pytest.approx(0.0)
    stats.receive(SSRC, 2, 320, 0.045)
    assert stats.jitter == pytest.approx(2.5)
    assert stats.jitter_ms == pytest.approx(2.5 / 8)
    stats.receive(SSRC, 3, 480, 0.060)
    assert stats.jitter == pytest.approx(4.84375)
    assert stats.max_jitter == pytest.approx(4.84375)


def test_constant_delay_is_not_jitter() -> None:
    stats = ReceiveStats()
    for sequence in range(50):
        stats.receive(SSRC, sequence, 160 * sequence, 0.300 + PERIOD * sequence)
    assert stats.jitter == pytest.approx(0.0, abs=1e-6)


def test_new_ssrc_is_an_anomaly_not_loss() -> None:
    stats = ReceiveStats()
    feed(stats, [100, 101, 102, 103, 104])
    feed(stats, [5000, 5001, 5002], ssrc=0xBEEF)
    assert stats.ssrc_changes == 1
    assert stats.ssrc == 0xBEEF
    assert (stats.expected, stats.received, stats.lost) == (8, 8, 0)
    assert stats.sequence_jumps == 0


def test_sequence_jump_in_one_ssrc_is_a_restart() -> None:
    stats = ReceiveStats()
    feed(stats, [10, 11, 12])
    stats.receive(SSRC, 20000, 160 * 13, PERIOD * 13)
    stats.receive(SSRC, 20001, 160 * 14, PERIOD * 14)
    assert stats.sequence_jumps == 1
    assert (stats.expected, stats.lost) == (5, 0)


def test_timestamp_going_backwards_is_a_jump() -> None:
    stats = ReceiveStats()
    stats.receive(SSRC, 0, 8000, 0.00)
    stats.receive(SSRC, 1, 8160, 0.02)
    stats.receive(SSRC, 2, 160, 0.04)
    assert stats.timestamp_jumps == 1


def test_pause_with_advanced_timestamp_is_not_a_jump() -> None:
    stats = ReceiveStats()
    feed(stats, [0, 1, 2])
    stats.receive(SSRC, 3, 160 * 3 + 8000 * 2, PERIOD * 3 + 2.0)  # 2 s on hold, then resume
    assert stats.timestamp_jumps == 0
    stats.receive(SSRC, 4, 160 * 4 + 8000 * 2, PERIOD * 4 + 5.0)  # 3 s later, same timestamp
    assert stats.timestamp_jumps == 1
    assert stats.lost == 0


def test_telephone_events_neither_jitter_nor_jump() -> None:
    # Audio 0, 1; three events sharing the start timestamp 320; audio resumes at 5 * 160.
    stats = ReceiveStats(jitter_excluded=frozenset({101}))
    stats.receive(SSRC, 0, 0, 0.00)
    stats.receive(SSRC, 1, 160, 0.02)
    for index in (2, 3, 4):
        stats.receive(SSRC, index, 320, PERIOD * index, payload_type=101)
    stats.receive(SSRC, 5, 800, 0.10)
    assert stats.jitter == pytest.approx(0.0, abs=1e-6)
    assert stats.timestamp_jumps == 0
    assert stats.lost == 0


def test_interval_loss_is_the_rtcp_fraction() -> None:
    stats = ReceiveStats()
    feed(stats, [0, 1, 2, 5, 6, 7, 8, 9])  # 3 and 4 lost
    first = stats.interval()
    assert (first.expected, first.received) == (10, 8)
    assert first.fraction_lost == (2 << 8) // 10  # 51/256
    feed(stats, list(range(10, 20)))
    second = stats.interval()
    assert (second.expected, second.received, second.fraction_lost) == (10, 10, 0)
    assert stats.lost == 2  # cumulative


def test_send_stats_counts_payload_octets() -> None:
    sent = SendStats()
    sent.sent(160, 0, 1.0)
    sent.sent(4, 160, 1.02, dtmf=True)
    assert (sent.packets, sent.octets, sent.dtmf_packets) == (2, 164, 1)
    assert (sent.first_send, sent.last_send, sent.last_timestamp) == (1.0, 1.02, 160)


def test_echo_with_our_ssrc_is_matched_by_sequence() -> None:
    echo = EchoLatency(SSRC)
    echo.sent(65535, b"a" * 160, 10.000)
    echo.sent(0, b"b" * 160, 10.020)
    assert echo.received(SSRC, 0, b"b" * 160, 10.023) == pytest.approx(0.003)
    assert echo.received(SSRC, 65535, b"a" * 160, 10.025) == pytest.approx(0.025)
    assert echo.received(SSRC, 0, b"b" * 160, 10.030) is None  # a duplicate echo counts once
    assert echo.received(SSRC, 17, b"c" * 160, 10.030) is None  # never sent
    assert echo.count == 2
    assert echo.average == pytest.approx(0.014)
    assert (echo.minimum, echo.maximum) == (pytest.approx(0.003), pytest.approx(0.025))


def test_reoriginated_echo_is_matched_by_unique_payload() -> None:
    echo = EchoLatency(SSRC)
    for index in range(10):
        echo.sent(index, bytes([index]) * 160, 1.0 + PERIOD * index)
    rtt = echo.received(0xFACE, 4321, bytes([3]) * 160, 1.0 + PERIOD * 3 + 0.004)
    assert rtt == pytest.approx(0.004)


def test_repeated_payload_is_never_matched() -> None:
    echo = EchoLatency(SSRC)
    silence = b"\xff" * 160
    for index in range(5):
        echo.sent(index, silence, PERIOD * index)
    assert echo.received(0xFACE, 1, silence, 0.2) is None  # far end's own silence
    assert echo.count == 0


def test_payload_matching_forgets_old_packets() -> None:
    echo = EchoLatency(SSRC, payload_window=4)
    for index in range(8):
        echo.sent(index, bytes([index]) * 160, PERIOD * index)
    assert echo.received(0xFACE, 0, bytes([1]) * 160, 0.2) is None
    assert echo.received(0xFACE, 0, bytes([6]) * 160, 0.2) == pytest.approx(0.2 - PERIOD * 6)


def test_payload_matching_only_for_matchable_payloads() -> None:
    echo = EchoLatency(SSRC, matchable=frozenset({b"x" * 160}))
    echo.sent(0, b"x" * 160, 0.0)
    echo.sent(1, b"y" * 160, 0.02)
    assert echo.received(0xFACE, 9, b"y" * 160, 0.03) is None
    assert echo.received(0xFACE, 8, b"x" * 160, 0.03) == pytest.approx(0.03)

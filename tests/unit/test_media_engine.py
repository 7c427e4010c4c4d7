"""The gevent media engine over loopback: sessions talking to each other and to echo peers."""

from __future__ import annotations

import gc
import struct
from collections.abc import Callable, Iterator

import gevent
import gevent.socket
import greenlet
import pytest

from sipharness.media.engine import MediaEngine, MediaSession, shared_engine
from sipharness.media.rtp import parse_rtp
from sipharness.media.source import SilenceSource

LOCAL = ("127.0.0.1", 0)
Rewrite = Callable[[bytes], bytes]


@pytest.fixture
def engine() -> Iterator[MediaEngine]:
    engine = MediaEngine()
    yield engine
    engine.stop_all()


class EchoPeer:
    """A UDP socket that sends every datagram back to its source, optionally rewritten."""

    def __init__(self, rewrite: Rewrite | None = None, limit: int = 10_000) -> None:
        self.sock = gevent.socket.socket(gevent.socket.AF_INET, gevent.socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address: tuple[str, int] = self.sock.getsockname()
        self.datagrams: list[bytes] = []
        self._rewrite = rewrite
        self._greenlet = gevent.spawn(self._run, limit)

    def _run(self, limit: int) -> None:
        for _ in range(limit):
            data, source = self.sock.recvfrom(4096)
            self.datagrams.append(data)
            self.sock.sendto(self._rewrite(data) if self._rewrite else data, source)

    def close(self) -> None:
        self._greenlet.kill()
        self.sock.close()


@pytest.fixture
def echo_peer() -> Iterator[Callable[..., EchoPeer]]:
    peers: list[EchoPeer] = []

    def make(rewrite: Rewrite | None = None) -> EchoPeer:
        peers.append(EchoPeer(rewrite))
        return peers[-1]

    yield make
    for peer in peers:
        peer.close()


def test_two_sessions_exchange_audio_dtmf_and_rtcp(engine: MediaEngine) -> None:
    a = MediaSession(engine, LOCAL, ("127.0.0.1", 9), dtmf_payload_type=101, rtcp_interval=0.25)
    b = MediaSession(engine, LOCAL, a.local, dtmf_payload_type=101, rtcp_interval=0.25)
    a.set_remote(b.local)
    a.start()
    b.start()
    try:
        gevent.sleep(0.2)
        a.send_dtmf("1#9")
        assert a.wait_dtmf(timeout=3.0)
        gevent.sleep(0.4)
        a.stop()
        gevent.sleep(0.05)
    finally:
        a.stop()
        b.stop()
    ra, rb = a.stats(), b.stats()
    for report in (ra, rb):
        assert report.rtp_arrived
        assert report.received.lost == 0
        assert report.received.ssrc_changes == report.received.timestamp_jumps == 0
        assert report.received.jitter_ms < 10.0  # half a packet time
        assert report.received.first_packet_ms is not None
        assert report.received.first_packet_ms < 1000.0  # SDP-07: within 1 s
        assert report.echoed_packets == 0  # b's audio is not an echo of a's
        assert report.mos == pytest.approx(4.41, abs=0.02)
        assert report.remote_rtcp is not None
        assert report.remote_rtcp.fraction_lost == 0.0
    assert rb.received.dtmf_digits == "1#9"
    assert ra.sent.dtmf_packets == 3 * 7  # 100 ms digits at 20 ms: 4 updates + 3 ends
    # a stopped first and sent BYE; b saw it and all of a's packets
    assert rb.remote_rtcp is not None and rb.remote_rtcp.bye
    assert rb.received.received == ra.sent.packets
    # about 50 packets per second, whatever the scheduling slack
    assert ra.sent.packets == pytest.approx(50 * ra.duration_s, rel=0.15)


def test_echo_gives_zero_loss_and_small_round_trip(
    engine: MediaEngine, echo_peer: Callable[..., EchoPeer]
) -> None:
    peer = echo_peer()
    with MediaSession(engine, LOCAL, peer.address, rtcp=False) as session:
        assert session.wait_for_rtp(timeout=1.0)
        gevent.sleep(0.6)
        session.set_direction("recvonly")  # stop sending, collect what is still in flight
        gevent.sleep(0.1)
    report = session.stats()
    assert report.received.lost == 0
    assert report.received.received == report.sent.packets
    assert report.echoed_packets == report.sent.packets
    assert report.latency_avg_ms is not None and report.latency_max_ms is not None
    assert report.latency_avg_ms < 20.0  # loopback: well under one packet time
    assert report.latency_min_ms is not None and report.latency_min_ms <= report.latency_max_ms
    assert report.mos == pytest.approx(4.41, abs=0.02)
    assert "0.00% lost" in report.summary()


def test_echo_under_a_new_ssrc_is_matched_by_payload(
    engine: MediaEngine, echo_peer: Callable[..., EchoPeer]
) -> None:
    def reoriginate(data: bytes) -> bytes:
        first, second, sequence, timestamp, _ = struct.unpack_from("!BBHII", data)
        header = struct.pack("!BBHII", first, second, (sequence + 1000) & 0xFFFF, timestamp, 77)
        return header + data[12:]

    peer = echo_peer(reoriginate)
    with MediaSession(engine, LOCAL, peer.address, rtcp=False) as session:
        gevent.sleep(0.4)
        session.set_direction("recvonly")
        gevent.sleep(0.1)
    report = session.stats()
    assert report.received.packets == report.sent.packets
    assert report.echoed_packets == report.sent.packets
    assert report.latency_avg_ms is not None and report.latency_avg_ms < 20.0


def test_silence_echoed_under_a_new_ssrc_gives_no_latency(
    engine: MediaEngine, echo_peer: Callable[..., EchoPeer]
) -> None:
    peer = echo_peer(lambda data: data[:8] + b"\x00\x00\x00\x4d" + data[12:])
    source = SilenceSource()
    with MediaSession(engine, LOCAL, peer.address, source=source, rtcp=False) as session:
        gevent.sleep(0.2)
    report = session.stats()
    assert report.rtp_arrived
    assert report.echoed_packets == 0
    assert report.latency_avg_ms is None


def test_no_rtp_back_is_reported(engine: MediaEngine) -> None:
    silent = gevent.socket.socket(gevent.socket.AF_INET, gevent.socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        with MediaSession(engine, LOCAL, silent.getsockname()) as session:
            assert not session.wait_for_rtp(timeout=0.2)
    finally:
        silent.close()
    report = session.stats()
    assert not report.rtp_arrived
    assert report.sent.packets > 0
    assert report.mos is None
    assert report.received.first_packet_ms is None
    assert "no RTP arrived" in report.summary()


def test_symmetric_rtp_and_learning_the_remote(engine: MediaEngine) -> None:
    # The far end is "behind NAT": its SDP address is wrong; we must answer where it sends from.
    nat = gevent.socket.socket(gevent.socket.AF_INET, gevent.socket.SOCK_DGRAM)
    nat.bind(("127.0.0.1", 0))
    nat.settimeout(2.0)
    try:
        with MediaSession(engine, LOCAL, ("127.0.0.1", 9), learn_remote=True, rtcp=False) as us:
            nat.sendto(bytes.fromhex("80000001000000a000000042") + b"\xff" * 160, us.local)
            data, source = nat.recvfrom(4096)
            assert source == us.local  # sent from the port we receive on
            assert parse_rtp(data).ssrc == us.ssrc
            assert us.remote_learned and us.remote == nat.getsockname()
    finally:
        nat.close()


def test_sequence_and_timestamp_wrap_on_the_wire(engine: MediaEngine) -> None:
    receiver = MediaSession(engine, LOCAL, ("127.0.0.1", 9), direction="recvonly", rtcp=False)
    sender = MediaSession(
        engine, LOCAL, receiver.local, sequence=65520, timestamp=2**32 - 1600, rtcp=False
    )
    with receiver, sender:
        gevent.sleep(0.6)
    report = receiver.stats()
    assert report.received.received > 20  # crossed both wraps
    assert report.received.lost == 0
    assert report.received.sequence_jumps == report.received.timestamp_jumps == 0
    assert sender.sequence < 65520
    assert receiver.stats().sent.packets == 0


def test_hold_and_resume_keep_the_stream_continuous(engine: MediaEngine) -> None:
    receiver = MediaSession(engine, LOCAL, ("127.0.0.1", 9), direction="recvonly", rtcp=False)
    sender = MediaSession(engine, LOCAL, receiver.local, rtcp=False)
    with receiver, sender:
        gevent.sleep(0.2)
        sender.set_direction("recvonly")
        held = receiver.stats().received.packets
        gevent.sleep(0.3)  # longer than the 0.2 s a timestamp may lag behind arrival
        assert receiver.stats().received.packets <= held + 1
        sender.set_direction("sendrecv")
        gevent.sleep(0.2)
    report = receiver.stats()
    assert report.received.packets > held + 5
    assert report.received.lost == 0  # same SSRC, sequence continues
    assert report.received.ssrc_changes == report.received.sequence_jumps == 0
    assert report.received.timestamp_jumps == 0  # the timestamp advanced over the hold


def _live_greenlets() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, greenlet.greenlet) and not o.dead)


def test_many_sessions_share_one_greenlet(engine: MediaEngine) -> None:
    pairs = []
    for _ in range(40):
        a = MediaSession(engine, LOCAL, ("127.0.0.1", 9), rtcp=False)
        b = MediaSession(engine, LOCAL, a.local, rtcp=False)
        a.set_remote(b.local)
        pairs += [a, b]
    greenlets_before = _live_greenlets()
    for session in pairs:
        session.start()
    gevent.sleep(0.5)
    assert _live_greenlets() - greenlets_before <= 1  # not one per stream
    engine.stop_all()
    reports = [session.stats() for session in pairs]
    for ours, theirs in zip(reports[::2], reports[1::2], strict=True):
        for receiver, sender in ((ours, theirs), (theirs, ours)):
            assert receiver.received.lost == 0
            # only what was in flight when the receiver stopped may be missing
            assert receiver.received.received >= sender.sent.packets - 2
    gevent.sleep(0.05)
    assert not engine.sessions


def test_engine_greenlet_ends_with_the_last_session(engine: MediaEngine) -> None:
    session = MediaSession(engine, LOCAL, ("127.0.0.1", 9), rtcp=False).start()
    gevent.sleep(0.05)
    greenlet = engine._greenlet
    assert greenlet is not None and not greenlet.dead
    session.stop()
    greenlet.join(timeout=1.0)
    assert greenlet.dead
    session.stop()  # idempotent
    with pytest.raises(RuntimeError, match="restarted"):
        session.start()


def test_dtmf_needs_a_negotiated_payload_type(engine: MediaEngine) -> None:
    session = MediaSession(engine, LOCAL, ("127.0.0.1", 9), rtcp=False)
    with session, pytest.raises(ValueError, match="telephone-event"):
        session.send_dtmf("1")


def test_shared_engine_is_one_per_hub() -> None:
    assert shared_engine() is shared_engine()

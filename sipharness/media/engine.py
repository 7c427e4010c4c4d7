"""The gevent RTP engine: one greenlet sends every session's packets, hub watchers receive them.

Sending: a single greenlet keeps a heap of (next due time, session). Due times are absolute
(session start + n × ptime), so timer slack never accumulates into drift; the greenlet sleeps
until the earliest due time and sends every packet due by then.

Receiving: each session's socket gets a libev I/O watcher on the gevent hub whose callback
drains the socket without blocking (at most ``_DRAIN_LIMIT`` datagrams per wake-up). The
kernel's epoll reports only ready sockets, so hundreds of idle sockets cost nothing, no
greenlet exists per stream, and a packet is time-stamped when the hub sees it, not at the
next send tick. Sockets are the C-level ``_socket.socket`` (which gevent never patches) in
non-blocking mode, so neither the callbacks nor the sender ever switch greenlets.
"""

from __future__ import annotations

import _socket
import errno
import heapq
import itertools
import os
import random
import struct
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import gevent
import gevent.event

from sipharness.media import dtmf, g711
from sipharness.media.mos import mos_from
from sipharness.media.negotiation import Direction, negotiate
from sipharness.media.rtcp import (
    SDES_CNAME,
    Goodbye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    RtcpParseError,
    SenderReport,
    SourceDescription,
    ntp_from_unix,
    ntp_middle_from_unix,
    pack_compound,
    parse_compound,
)
from sipharness.media.rtp import RtpParseError, looks_like_rtcp, parse_rtp
from sipharness.media.source import AudioSource, ToneSource
from sipharness.media.stats import EchoLatency, ReceiveStats, SendStats
from sipharness.sip.sdp import SessionDescription

Address = tuple[str, int]
DatagramHandler = Callable[[bytes, Address, float], None]

_HEADER = struct.Struct("!BBHII")
_DRAIN_LIMIT = 256
_DUE_TOLERANCE = 0.0005  # send packets due within half a millisecond in the same wake-up
_SOCKET_BUFFER = 1 << 20
_PORT_ATTEMPTS = 50
_PAYLOAD_WINDOW = 50  # packets: a re-originated echo must return within 1 s at 20 ms


def _bind_udp(host: str, port: int) -> _socket.socket:
    family = _socket.AF_INET6 if ":" in host else _socket.AF_INET
    sock = _socket.socket(family, _socket.SOCK_DGRAM)
    try:
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVBUF, _SOCKET_BUFFER)
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDBUF, _SOCKET_BUFFER)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _bind_pair(host: str, port: int) -> tuple[_socket.socket, _socket.socket]:
    """An RTP socket on ``port`` (any even port when 0) and its RTCP socket on port + 1."""
    attempts = 1 if port else _PORT_ATTEMPTS
    for _ in range(attempts):
        rtp = _bind_udp(host, port)
        chosen = rtp.getsockname()[1]
        if chosen % 2 and not port:
            rtp.close()
            continue
        try:
            return rtp, _bind_udp(host, chosen + 1)
        except OSError:
            rtp.close()
            if port:
                raise
    raise OSError(errno.EADDRINUSE, f"no free RTP/RTCP port pair on {host}")


@dataclass(frozen=True, slots=True)
class SentReport:
    """What we sent."""

    packets: int
    octets: int
    dtmf_packets: int
    send_errors: int
    late_packets: int
    skipped_packets: int


@dataclass(frozen=True, slots=True)
class ReceivedReport:
    """What arrived, RFC 3550 style; ``first_packet_ms`` is counted from ``start()``."""

    packets: int
    received: int
    expected: int
    lost: int
    loss_ratio: float
    duplicates: int
    out_of_order: int
    sequence_jumps: int
    timestamp_jumps: int
    ssrc_changes: int
    jitter_ms: float
    max_jitter_ms: float
    first_packet_ms: float | None
    dtmf_digits: str


@dataclass(frozen=True, slots=True)
class RemoteRtcpReport:
    """The far end's view of our stream, from its last RTCP report block about us."""

    fraction_lost: float
    cumulative_lost: int
    jitter_ms: float
    round_trip_ms: float | None
    bye: bool


@dataclass(frozen=True, slots=True)
class MediaReport:
    """Per-direction statistics of one session. Latency is the round trip of echoed packets."""

    local: Address
    remote: Address
    codec: str
    duration_s: float
    sent: SentReport
    received: ReceivedReport
    echoed_packets: int
    latency_avg_ms: float | None
    latency_min_ms: float | None
    latency_max_ms: float | None
    remote_rtcp: RemoteRtcpReport | None
    mos: float | None

    @property
    def rtp_arrived(self) -> bool:
        return self.received.packets > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line for a report or a failed expectation."""
        sent = f"sent {self.sent.packets} RTP packets to {self.remote[0]}:{self.remote[1]}"
        if not self.rtp_arrived:
            where = f"{self.local[0]}:{self.local[1]}"
            return f"{sent}; no RTP arrived on {where} in {self.duration_s:.1f} s"
        got = self.received
        parts = [
            sent,
            f"received {got.received} of {got.expected} expected "
            f"({100 * got.loss_ratio:.2f}% lost), jitter {got.jitter_ms:.2f} ms",
        ]
        if self.latency_avg_ms is not None:
            parts.append(
                f"echo round trip avg {self.latency_avg_ms:.2f} ms, "
                f"max {self.latency_max_ms or 0.0:.2f} ms"
            )
        if got.ssrc_changes or got.sequence_jumps or got.timestamp_jumps:
            parts.append(
                f"{got.ssrc_changes} SSRC changes, {got.sequence_jumps} sequence jumps, "
                f"{got.timestamp_jumps} timestamp jumps"
            )
        if self.mos is not None:
            parts.append(f"MOS {self.mos:.2f}")
        return "; ".join(parts)


class MediaEngine:
    """Drives the RTP of every session in this process from one greenlet.

    The sending greenlet exists only while sessions are active and ends by itself when the
    last one stops. ``lag_max_ms`` and ``lag_avg_ms`` say how late packets left compared
    with their due time: the harness's own saturation (LOAD-04).
    """

    def __init__(self, max_lag: float = 1.0) -> None:
        self.max_lag = max_lag
        self._heap: list[tuple[float, int, MediaSession, int]] = []
        self._order = itertools.count()
        self._greenlet: gevent.Greenlet | None = None
        self._wakeup = gevent.event.Event()
        self.sessions: set[MediaSession] = set()
        self.lag_max_ms = 0.0
        self._lag_total = 0.0
        self._lag_count = 0

    @property
    def lag_avg_ms(self) -> float:
        return self._lag_total / self._lag_count if self._lag_count else 0.0

    def _add(self, session: MediaSession, due: float) -> None:
        """Schedule ``session`` (again) at ``due``; older heap entries of it become stale."""
        self.sessions.add(session)
        earliest = self._heap[0][0] if self._heap else None
        heapq.heappush(self._heap, (due, next(self._order), session, session._generation))
        if earliest is None or due < earliest:
            self._wakeup.set()
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)

    def _remove(self, session: MediaSession) -> None:
        self.sessions.discard(session)
        if not self.sessions:
            self._wakeup.set()  # let the sending greenlet see it has nothing left to do

    def _run(self) -> None:
        heap = self._heap
        while self.sessions and heap:
            delay = heap[0][0] - time.monotonic()
            if delay > 0:
                self._wakeup.wait(timeout=min(delay, 1.0))
                self._wakeup.clear()
            now = time.monotonic()
            while heap and heap[0][0] <= now + _DUE_TOLERANCE:
                due, _, session, generation = heapq.heappop(heap)
                if not session.active or generation != session._generation:
                    continue
                lag = now - due
                if lag > 0:
                    self._lag_total += lag * 1000
                    self._lag_count += 1
                    self.lag_max_ms = max(self.lag_max_ms, lag * 1000)
                entry = (session._send_due(due, now), next(self._order), session, generation)
                heapq.heappush(heap, entry)
        heap.clear()

    def stop_all(self) -> None:
        """Stop every session (sending RTCP BYE where enabled) and let the greenlet end."""
        for session in list(self.sessions):
            session.stop()
        self._wakeup.set()


def _signature_table() -> bytes:
    """A per-session least-significant-bit signature (one quantisation step) for frames.

    Two sessions playing the same source then send different payloads, so an echo that
    comes back under another SSRC is matched by payload to the session that sent it, never
    to a far end playing the same audio.
    """
    flips = random.getrandbits(256)
    return bytes(octet ^ ((flips >> octet) & 1) for octet in range(256))


_SHARED: dict[int, MediaEngine] = {}


def shared_engine() -> MediaEngine:
    """The process's engine for the current gevent hub (one per thread that runs a hub)."""
    key = id(gevent.get_hub())
    engine = _SHARED.get(key)
    if engine is None:
        engine = _SHARED[key] = MediaEngine()
    return engine


class MediaSession:
    """One RTP stream pair bound to a negotiated SDP: G.711 out, anything in, RTCP beside.

    ``local`` is a ``(host, port)`` to bind (port 0: any even port) or an already bound UDP
    socket (anything with ``fileno()``; the session uses a duplicate of it, set to
    non-blocking). Packets go out from the port they are received on (symmetric RTP); with
    ``learn_remote`` the first packet's source address replaces ``remote`` (NAT, RFC 4961).
    RTCP uses port + 1 unless ``rtcp_mux``; ``rtcp=False`` turns it off. ``ssrc``,
    ``sequence`` and ``timestamp`` are random unless given.
    """

    def __init__(
        self,
        engine: MediaEngine,
        local: Address | Any,
        remote: Address,
        payload_type: int = 0,
        codec: str = "PCMU",
        ptime: int = 20,
        source: AudioSource | None = None,
        *,
        dtmf_payload_type: int | None = None,
        direction: Direction = "sendrecv",
        learn_remote: bool = False,
        rtcp: bool = True,
        rtcp_mux: bool = False,
        rtcp_interval: float = 5.0,
        remote_rtcp: Address | None = None,
        ssrc: int | None = None,
        sequence: int | None = None,
        timestamp: int | None = None,
        cname: str = "sipharness@127.0.0.1",
    ) -> None:
        self.engine = engine
        self.codec = codec.upper()
        if self.codec not in g711.STATIC_PAYLOAD_TYPE:
            raise ValueError(f"unsupported codec {codec!r}: the engine sends G.711 only")
        if ptime <= 0 or ptime > 200:
            raise ValueError(f"ptime {ptime} ms outside 1..200")
        self.payload_type = payload_type
        self.ptime = ptime
        self.dtmf_payload_type = dtmf_payload_type
        self.direction = direction
        self.learn_remote = learn_remote
        self.remote: Address = (remote[0], int(remote[1]))
        self.remote_learned = False
        self.source: AudioSource = source or ToneSource()
        self._signature = _signature_table()
        self.ssrc = random.getrandbits(32) if ssrc is None else ssrc
        self.echo = EchoLatency(self.ssrc, payload_window=_PAYLOAD_WINDOW, matchable=frozenset())
        self._load_frames()
        self._frame_index = 0
        self._sequence = random.getrandbits(16) if sequence is None else sequence
        self._timestamp = random.getrandbits(32) if timestamp is None else timestamp
        self._rtcp_enabled = rtcp
        self._rtcp_mux = rtcp_mux
        self.rtcp_interval = rtcp_interval
        self.cname = cname
        self._sockets: list[_socket.socket] = []
        self._rtcp_sock: _socket.socket | None = None
        if isinstance(local, tuple):
            if rtcp and not rtcp_mux:
                self._sock, self._rtcp_sock = _bind_pair(local[0], int(local[1]))
                self._sockets = [self._sock, self._rtcp_sock]
            else:
                self._sock = _bind_udp(local[0], int(local[1]))
                self._sockets = [self._sock]
        else:
            fd = os.dup(local.fileno())
            self._sock = _socket.socket(fileno=fd)
            self._sock.setblocking(False)
            self._sockets = [self._sock]
        self.local: Address = self._sock.getsockname()[:2]
        if remote_rtcp is not None:
            self.remote_rtcp: Address | None = remote_rtcp
        elif rtcp_mux:
            self.remote_rtcp = self.remote
        else:
            self.remote_rtcp = (self.remote[0], self.remote[1] + 1)
        self.sent = SendStats()
        self.received = ReceiveStats(
            g711.CLOCK_RATE,
            frozenset() if dtmf_payload_type is None else frozenset({dtmf_payload_type}),
        )
        self.dtmf_received = dtmf.DtmfReceiver()
        self._dtmf_queue: deque[tuple[bytes, bool, bool] | None] = deque()
        self._dtmf_done = gevent.event.Event()
        self._dtmf_done.set()
        self._rtp_arrived = gevent.event.Event()
        self._event_timestamp = 0
        self._watchers: list[Any] = []
        self.active = False
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self._next_rtcp = 0.0
        self._last_sr: tuple[int, float] | None = None  # (LSR value, arrival)
        self._remote_block: ReportBlock | None = None
        self._remote_rtt: float | None = None
        self._remote_bye = False
        self._generation = 0
        self._paused_at: float | None = None

    @classmethod
    def from_sdp(
        cls,
        engine: MediaEngine,
        local_sdp: SessionDescription | bytes,
        remote_sdp: SessionDescription | bytes,
        *,
        local: Address | Any = None,
        source: AudioSource | None = None,
        **options: Any,
    ) -> MediaSession:
        """A session for the first audio stream of our SDP and the far end's (offer or
        answer, either way round). ``local`` (a ``(host, port)`` or a bound socket) defaults
        to our SDP's c= address and m= port; ``options`` are the keyword arguments of
        ``MediaSession`` (``learn_remote``, ``rtcp``…). Raises ``MediaNegotiationError``."""
        media = negotiate(local_sdp, remote_sdp)
        options.setdefault("rtcp_mux", media.rtcp_mux)
        options.setdefault("remote_rtcp", media.remote_rtcp)
        return cls(
            engine,
            media.local if local is None else local,
            media.remote,
            media.payload_type,
            media.codec,
            media.ptime,
            source,
            dtmf_payload_type=media.dtmf_payload_type,
            direction=media.direction,
            **options,
        )

    def _load_frames(self) -> None:
        """Encode the source for the current codec and ptime."""
        self.frame_samples = g711.CLOCK_RATE * self.ptime // 1000
        frames = self.source.frames(self.codec, self.frame_samples)
        self._frames = tuple(frame.translate(self._signature) for frame in frames)
        # Payload matching needs frames that recur neither within a cycle nor, through a
        # short cycle, within the matching window.
        unique: frozenset[bytes] = frozenset()
        if len(self._frames) >= _PAYLOAD_WINDOW:
            counts = Counter(self._frames)
            unique = frozenset(frame for frame, count in counts.items() if count == 1)
        self.echo.matchable = unique

    def update_from_sdp(
        self, local_sdp: SessionDescription | bytes, remote_sdp: SessionDescription | bytes
    ) -> None:
        """Apply a re-INVITE's offer/answer: new address, codec, ptime, DTMF type or
        direction. SSRC, sequence and timestamp continue (SDP-04, SDP-07)."""
        media = negotiate(local_sdp, remote_sdp)
        self.set_remote(media.remote, media.remote_rtcp)
        if (media.codec, media.ptime) != (self.codec, self.ptime):
            self.codec, self.ptime = media.codec, media.ptime
            self._load_frames()
        self.payload_type = media.payload_type
        self.dtmf_payload_type = media.dtmf_payload_type
        self.received.jitter_excluded = frozenset(
            () if media.dtmf_payload_type is None else (media.dtmf_payload_type,)
        )
        if media.direction != self.direction:
            self.set_direction(media.direction)

    @property
    def sends(self) -> bool:
        return self.direction in ("sendrecv", "sendonly")

    @property
    def sequence(self) -> int:
        """The sequence number the next packet will carry."""
        return self._sequence

    def start(self) -> MediaSession:
        """Start sending (when the direction allows) and receiving; returns the session."""
        if self.active:
            return self
        if self.stopped_at is not None:
            raise RuntimeError("a stopped media session cannot be restarted")
        loop = gevent.get_hub().loop
        for sock, handler in self._handlers():
            watcher = loop.io(sock.fileno(), 1)
            watcher.ref = False
            watcher.start(self._on_readable, sock, handler)
            self._watchers.append(watcher)
        self.active = True
        self.started_at = now = time.monotonic()
        self._next_rtcp = now + self.rtcp_interval
        self.engine._add(self, now)
        return self

    def _handlers(self) -> list[tuple[_socket.socket, DatagramHandler]]:
        handlers: list[tuple[_socket.socket, DatagramHandler]] = [(self._sock, self._on_datagram)]
        if self._rtcp_sock is not None:
            handlers.append((self._rtcp_sock, self._on_rtcp))
        return handlers

    def set_remote(self, remote: Address, remote_rtcp: Address | None = None) -> None:
        """Send to a new address from now on (a re-INVITE moved the far end's media)."""
        self.remote = (remote[0], int(remote[1]))
        self.remote_rtcp = remote_rtcp or (
            self.remote if self._rtcp_mux else (self.remote[0], self.remote[1] + 1)
        )

    def set_direction(self, direction: Direction) -> None:
        """Change what we send (hold, resume). SSRC and sequence continue; on resume the
        timestamp advances by the time spent not sending, as RFC 3550 §5.1 asks."""
        now = time.monotonic()
        was_sending = self.sends
        self.direction = direction
        if self.sends and not was_sending and self._paused_at is not None:
            held = int((now - self._paused_at) * g711.CLOCK_RATE)
            self._timestamp = (self._timestamp + held) & 0xFFFFFFFF
        if was_sending and not self.sends:
            self._paused_at = now
        if self.active:
            self._generation += 1
            self.engine._add(self, now)

    def send_dtmf(
        self, digits: str, duration_ms: int = 100, gap_ms: int = 60, volume: int = 10
    ) -> None:
        """Queue RFC 4733 events for ``digits``; audio pauses while an event is sent."""
        if self.dtmf_payload_type is None:
            raise ValueError("no telephone-event payload type was negotiated for this session")
        duration = g711.CLOCK_RATE * duration_ms // 1000
        gap_slots = max(1, -(-gap_ms // self.ptime))
        for digit in digits:
            payloads = dtmf.digit_payloads(digit, duration, self.frame_samples, volume)
            for index, (payload, marker) in enumerate(payloads):
                self._dtmf_queue.append((payload, marker, index == 0))
            self._dtmf_queue.extend([None] * gap_slots)
        if self._dtmf_queue:
            self._dtmf_done.clear()

    def wait_for_rtp(self, timeout: float) -> bool:
        """Block this greenlet until the first RTP packet arrives; False on timeout or stop."""
        self._rtp_arrived.wait(timeout)
        return self.received.packets > 0

    def wait_dtmf(self, timeout: float) -> bool:
        """Block this greenlet until every queued digit is sent; False on timeout."""
        return self._dtmf_done.wait(timeout)

    def _send_due(self, due: float, now: float) -> float:
        """Send the packet due at ``due``; returns when the next one is due."""
        if not self.sends:
            if self._rtcp_enabled and now >= self._next_rtcp:
                self._next_rtcp = now + self.rtcp_interval
                self._send_rtcp(now)
            # nothing to send: wake for the next report, or never (set_direction reschedules)
            return self._next_rtcp if self._rtcp_enabled else float("inf")
        period = self.ptime / 1000.0
        behind = now - due
        if behind > self.engine.max_lag:
            missed = int(behind / period)
            self.sent.skipped_packets += missed
            self._timestamp += missed * self.frame_samples
            self._frame_index += missed
            due += missed * period
        elif behind > period:
            self.sent.late_packets += 1
        item = self._dtmf_queue.popleft() if self._dtmf_queue else None
        if item is not None:
            payload, marker, first = item
            if first:
                self._event_timestamp = self._timestamp
            self._send(
                self.dtmf_payload_type or 0, marker, self._event_timestamp, payload, now, True
            )
        else:
            frames = self._frames
            payload = frames[self._frame_index % len(frames)]
            self._send(self.payload_type, False, self._timestamp, payload, now, False)
        if not self._dtmf_queue and not self._dtmf_done.is_set():
            self._dtmf_done.set()
        self._frame_index += 1
        self._timestamp = (self._timestamp + self.frame_samples) & 0xFFFFFFFF
        if self._rtcp_enabled and now >= self._next_rtcp:
            self._next_rtcp = now + self.rtcp_interval
            self._send_rtcp(now)
        return due + period

    def _send(
        self,
        payload_type: int,
        marker: bool,
        timestamp: int,
        payload: bytes,
        now: float,
        is_dtmf: bool,
    ) -> None:
        sequence = self._sequence
        header = _HEADER.pack(
            0x80,
            (0x80 if marker else 0) | payload_type,
            sequence,
            timestamp & 0xFFFFFFFF,
            self.ssrc,
        )
        try:
            self._sock.sendto(header + payload, self.remote)
        except OSError:
            self.sent.send_errors += 1
        self._sequence = (sequence + 1) & 0xFFFF
        self.sent.sent(len(payload), timestamp, now, is_dtmf)
        self.echo.sent(sequence, payload, now)

    def _on_readable(self, sock: _socket.socket, handler: DatagramHandler) -> None:
        for _ in range(_DRAIN_LIMIT):
            try:
                data, address = sock.recvfrom(4096)
            except BlockingIOError:
                return
            except OSError:
                return
            handler(data, address, time.monotonic())

    def _on_datagram(self, data: bytes, address: Address, now: float) -> None:
        if self._rtcp_mux and looks_like_rtcp(data):
            self._on_rtcp(data, address, now)
            return
        if len(data) < 12 or data[0] >> 6 != 2:
            return
        if data[0] == 0x80:
            _, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
            payload_type, payload = second & 0x7F, data[12:]
        else:
            try:
                packet = parse_rtp(data)
            except RtpParseError:
                return
            payload_type, sequence, timestamp = (
                packet.payload_type,
                packet.sequence,
                packet.timestamp,
            )
            ssrc, payload = packet.ssrc, packet.payload
        if self.learn_remote and not self.remote_learned:
            self.remote_learned = True
            if address[:2] != self.remote:
                self.set_remote(address[:2])
        self.received.receive(ssrc, sequence, timestamp, now, payload_type)
        if self.received.packets == 1:
            self._rtp_arrived.set()
        self.echo.received(ssrc, sequence, payload, now)
        if payload_type == self.dtmf_payload_type:
            self.dtmf_received.receive(ssrc, timestamp, payload)

    def _on_rtcp(self, data: bytes, address: Address, now: float) -> None:
        try:
            packets = parse_compound(data)
        except RtcpParseError:
            return
        for packet in packets:
            if isinstance(packet, SenderReport):
                self._last_sr = (packet.ntp_middle, now)
            if isinstance(packet, SenderReport | ReceiverReport):
                for block in packet.reports:
                    if block.ssrc == self.ssrc:
                        self._remote_block = block
                        if block.last_sr:
                            arrived = ntp_middle_from_unix(time.time())
                            rtt = (arrived - block.last_sr - block.delay_since_last_sr) & 0xFFFFFFFF
                            self._remote_rtt = rtt / 65536.0
            elif isinstance(packet, Goodbye):
                self._remote_bye = True

    def _rtcp_packets(self, now: float) -> list[RtcpPacket]:
        blocks: tuple[ReportBlock, ...] = ()
        stats = self.received
        if stats.ssrc is not None:
            interval = stats.interval()
            last_sr, delay = 0, 0
            if self._last_sr is not None:
                last_sr = self._last_sr[0]
                delay = int((now - self._last_sr[1]) * 65536)
            blocks = (
                ReportBlock(
                    stats.ssrc,
                    interval.fraction_lost,
                    stats.expected - stats.received,
                    stats.highest_sequence,
                    int(stats.jitter),
                    last_sr,
                    delay,
                ),
            )
        report: RtcpPacket
        if self.sent.packets:
            elapsed = now - (self.sent.last_send or now)
            report = SenderReport(
                self.ssrc,
                ntp_from_unix(time.time()),
                (self.sent.last_timestamp + int(elapsed * g711.CLOCK_RATE)) & 0xFFFFFFFF,
                self.sent.packets,
                self.sent.octets,
                blocks,
            )
        else:
            report = ReceiverReport(self.ssrc, blocks)
        sdes = SourceDescription(((self.ssrc, ((SDES_CNAME, self.cname),)),))
        return [report, sdes]

    def _send_rtcp(self, now: float, goodbye: bool = False) -> None:
        if self.remote_rtcp is None:
            return
        packets = self._rtcp_packets(now)
        if goodbye:
            packets.append(Goodbye((self.ssrc,), "session ended"))
        sock = self._rtcp_sock or self._sock
        try:
            sock.sendto(pack_compound(packets), self.remote_rtcp)
        except OSError:
            self.sent.send_errors += 1

    def stop(self) -> None:
        """Stop sending and receiving, send RTCP BYE, close the sockets. Idempotent."""
        if self.stopped_at is not None:
            return
        self.stopped_at = time.monotonic()
        if self.active and self._rtcp_enabled:
            self._send_rtcp(self.stopped_at, goodbye=True)
        self.active = False
        self.engine._remove(self)
        for watcher in self._watchers:
            watcher.stop()
            watcher.close()
        self._watchers.clear()
        for sock in self._sockets:
            sock.close()
        self._dtmf_done.set()
        self._rtp_arrived.set()

    def __enter__(self) -> MediaSession:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> MediaReport:
        """A snapshot of both directions; works while running and after ``stop()``."""
        end = self.stopped_at or time.monotonic()
        start = self.started_at if self.started_at is not None else end
        got = self.received
        first_ms = None
        if got.first_arrival is not None and self.started_at is not None:
            first_ms = (got.first_arrival - self.started_at) * 1000
        echo = self.echo
        latency_avg = echo.average
        remote = None
        if self._remote_block is not None or self._remote_bye:
            block = self._remote_block
            remote = RemoteRtcpReport(
                fraction_lost=(block.fraction_lost / 256) if block else 0.0,
                cumulative_lost=block.cumulative_lost if block else 0,
                jitter_ms=(block.jitter * 1000 / g711.CLOCK_RATE) if block else 0.0,
                round_trip_ms=None if self._remote_rtt is None else self._remote_rtt * 1000,
                bye=self._remote_bye,
            )
        mos = None
        if got.packets:
            round_trip = latency_avg if latency_avg is not None else (self._remote_rtt or 0.0)
            mos = round(mos_from(got.loss_ratio, got.jitter_ms, round_trip * 500, self.codec), 3)
        return MediaReport(
            local=self.local,
            remote=self.remote,
            codec=self.codec,
            duration_s=end - start,
            sent=SentReport(
                self.sent.packets,
                self.sent.octets,
                self.sent.dtmf_packets,
                self.sent.send_errors,
                self.sent.late_packets,
                self.sent.skipped_packets,
            ),
            received=ReceivedReport(
                packets=got.packets,
                received=got.received,
                expected=got.expected,
                lost=got.lost,
                loss_ratio=got.loss_ratio,
                duplicates=got.duplicates,
                out_of_order=got.out_of_order,
                sequence_jumps=got.sequence_jumps,
                timestamp_jumps=got.timestamp_jumps,
                ssrc_changes=got.ssrc_changes,
                jitter_ms=got.jitter_ms,
                max_jitter_ms=got.max_jitter * 1000 / g711.CLOCK_RATE,
                first_packet_ms=first_ms,
                dtmf_digits="".join(self.dtmf_received.digits),
            ),
            echoed_packets=echo.count,
            latency_avg_ms=None if latency_avg is None else latency_avg * 1000,
            latency_min_ms=echo.minimum * 1000 if echo.count else None,
            latency_max_ms=echo.maximum * 1000 if echo.count else None,
            remote_rtcp=remote,
            mos=mos,
        )

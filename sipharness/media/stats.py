"""RTP quality statistics: per-direction counters, RFC 3550 loss and jitter, echo latency.

Sans-I/O: every method takes the arrival or send time (seconds, any monotonic clock) as an
argument, so sequences can be checked by hand.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

SEQ_MOD = 1 << 16
#: RFC 3550 A.1: a forward jump of this many sequence numbers or more is a restart, not loss.
MAX_DROPOUT = 3000
#: RFC 3550 A.1: a packet at most this far behind the highest one is late, not a restart.
MAX_MISORDER = 100
_WINDOW = 1024  # sequence numbers remembered for duplicate detection (> MAX_MISORDER)


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


@dataclass(frozen=True, slots=True)
class IntervalLoss:
    """Loss since the previous interval (RFC 3550 A.3), as an RTCP report block carries it."""

    expected: int
    received: int
    fraction_lost: int  # in 1/256, 0 when packets were duplicated rather than lost


class ReceiveStats:
    """Statistics of one received RTP stream (RFC 3550 A.1, A.3, A.8).

    ``packets`` counts every arrival; ``received`` counts distinct sequence numbers, so
    ``lost = expected - received`` never goes negative through duplicates. A packet arriving
    after a higher sequence number is ``out_of_order``. A new SSRC or a sequence jump of
    ``MAX_DROPOUT`` or more starts a new run: the old run's expected and received counts are
    kept, so a restart is counted as an anomaly, not as thousands of lost packets.
    Jitter is the A.8 estimator in timestamp units. A ``timestamp_jump`` is a packet whose
    timestamp moved more than ``max_timestamp_step`` seconds away from what its arrival time
    implies (the A.8 difference D): a timestamp that restarts or runs backwards, not a
    pause after which the sender advanced its timestamp correctly. Payload types in
    ``jitter_excluded`` (telephone-event, whose timestamp stays at the event start) are
    counted but update neither the jitter nor the timestamp check.
    """

    def __init__(
        self,
        clock_rate: int = 8000,
        jitter_excluded: frozenset[int] = frozenset(),
        max_timestamp_step: float = 0.2,
    ) -> None:
        self.clock_rate = clock_rate
        self.jitter_excluded = jitter_excluded
        self._max_step = int(max_timestamp_step * clock_rate)
        self.packets = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.sequence_jumps = 0
        self.timestamp_jumps = 0
        self.ssrc_changes = 0
        self.ssrc: int | None = None
        self.first_arrival: float | None = None
        self.last_arrival: float | None = None
        self.jitter = 0.0
        self.max_jitter = 0.0
        self._retired_expected = 0
        self._retired_received = 0
        self._base = 0
        self._highest = -1
        self._run_received = 0
        self._ring = [-1] * _WINDOW
        self._expected_prior = 0
        self._received_prior = 0
        self._last_transit_ts: int | None = None
        self._last_transit_arrival = 0.0

    def _start_run(self, sequence: int) -> None:
        if self._highest >= 0:
            self._retired_expected += self._highest - self._base + 1
            self._retired_received += self._run_received
        self._base = self._highest = sequence
        self._run_received = 0
        self._ring = [-1] * _WINDOW

    def _extend(self, sequence: int) -> int:
        delta = (sequence - self._highest) & 0xFFFF
        if delta < MAX_DROPOUT:
            return self._highest + delta
        if delta >= SEQ_MOD - MAX_MISORDER:
            return self._highest - (SEQ_MOD - delta)
        self.sequence_jumps += 1
        self._start_run(sequence)
        return sequence

    def receive(
        self, ssrc: int, sequence: int, timestamp: int, arrival: float, payload_type: int = 0
    ) -> None:
        """Account one arrived packet; ``arrival`` in seconds."""
        self.packets += 1
        if self.first_arrival is None:
            self.first_arrival = arrival
        self.last_arrival = arrival
        if ssrc != self.ssrc:
            if self.ssrc is not None:
                self.ssrc_changes += 1
                self._last_transit_ts = None
            self.ssrc = ssrc
            self._start_run(sequence)
            extended = sequence
        else:
            extended = self._extend(sequence)
        slot = extended % _WINDOW
        if self._ring[slot] == extended:
            self.duplicates += 1
            return
        self._ring[slot] = extended
        self._run_received += 1
        if extended < self._base:
            self._base = extended
        if extended < self._highest:
            self.out_of_order += 1
        else:
            self._highest = extended
        if payload_type in self.jitter_excluded:
            return
        if self._last_transit_ts is not None:
            arrival_delta = (arrival - self._last_transit_arrival) * self.clock_rate
            d = arrival_delta - _signed32(timestamp - self._last_transit_ts)
            if abs(d) > self._max_step:
                self.timestamp_jumps += 1
            self.jitter += (abs(d) - self.jitter) / 16
            self.max_jitter = max(self.max_jitter, self.jitter)
        self._last_transit_ts = timestamp
        self._last_transit_arrival = arrival

    @property
    def highest_sequence(self) -> int:
        """Extended highest sequence number of the current run (cycles in the upper 16 bits)."""
        return max(self._highest, 0)

    @property
    def expected(self) -> int:
        run = self._highest - self._base + 1 if self._highest >= 0 else 0
        return self._retired_expected + run

    @property
    def received(self) -> int:
        return self._retired_received + self._run_received

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.received)

    @property
    def loss_ratio(self) -> float:
        return self.lost / self.expected if self.expected else 0.0

    @property
    def jitter_ms(self) -> float:
        return self.jitter * 1000.0 / self.clock_rate

    def interval(self) -> IntervalLoss:
        """Loss since the last call (RFC 3550 A.3), for the next reception report block."""
        expected, received = self.expected, self.received
        expected_interval = expected - self._expected_prior
        received_interval = received - self._received_prior
        self._expected_prior, self._received_prior = expected, received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = (lost_interval << 8) // expected_interval
        return IntervalLoss(expected_interval, received_interval, fraction)


@dataclass(slots=True)
class SendStats:
    """Counters of one sent RTP stream; ``octets`` counts payload octets, as an SR does."""

    packets: int = 0
    octets: int = 0
    dtmf_packets: int = 0
    send_errors: int = 0
    late_packets: int = 0  # sent more than one packet time after they were due
    skipped_packets: int = 0  # dropped because the sender fell more than a second behind
    first_send: float | None = None
    last_send: float | None = None
    last_timestamp: int = 0

    def sent(self, octets: int, timestamp: int, now: float, dtmf: bool = False) -> None:
        """Account one sent packet of ``octets`` payload octets."""
        self.packets += 1
        self.octets += octets
        if dtmf:
            self.dtmf_packets += 1
        if self.first_send is None:
            self.first_send = now
        self.last_send = now
        self.last_timestamp = timestamp


class EchoLatency:
    """Round-trip time of packets the far end echoes back.

    An echo that keeps our SSRC is matched by sequence number (SIPp's ``-rtp_echo`` and the
    mock bridge return packets unchanged). An echo under another SSRC (a far end that
    re-originates the stream) is matched by payload: a payload seen exactly once among the
    last ``payload_window`` packets sent. Repeated payloads such as digital silence never
    match, so a far end's own audio is not mistaken for an echo; a re-originated echo must
    come back within ``payload_window`` packet times. ``matchable`` limits payload matching
    to the given payloads (the frames a source plays only once per cycle); None allows all.
    """

    def __init__(
        self,
        ssrc: int,
        window: int = _WINDOW,
        payload_window: int = 50,
        matchable: frozenset[bytes] | None = None,
    ) -> None:
        self.ssrc = ssrc
        self.matchable = matchable
        self.count = 0
        self.total = 0.0
        self.minimum = float("inf")
        self.maximum = 0.0
        self._window = window
        self._seqs = [-1] * window
        self._times = [0.0] * window
        self._payload_window = payload_window
        self._payload_times: dict[bytes, float] = {}
        self._payload_counts: dict[bytes, int] = {}
        self._payload_order: deque[bytes] = deque()

    def sent(self, sequence: int, payload: bytes, now: float) -> None:
        """Remember one sent packet."""
        slot = sequence % self._window
        self._seqs[slot] = sequence
        self._times[slot] = now
        counts = self._payload_counts
        counts[payload] = counts.get(payload, 0) + 1
        self._payload_times[payload] = now
        order = self._payload_order
        order.append(payload)
        if len(order) > self._payload_window:
            old = order.popleft()
            remaining = counts[old] - 1
            if remaining:
                counts[old] = remaining
            else:
                del counts[old]
                self._payload_times.pop(old, None)

    def received(self, ssrc: int, sequence: int, payload: bytes, now: float) -> float | None:
        """Match an arrived packet against what was sent; returns the round trip in seconds."""
        if ssrc == self.ssrc:
            slot = sequence % self._window
            if self._seqs[slot] != sequence:
                return None
            self._seqs[slot] = -1
            sent_at = self._times[slot]
        elif (
            self._payload_counts.get(payload) == 1
            and payload in self._payload_times
            and (self.matchable is None or payload in self.matchable)
        ):
            sent_at = self._payload_times.pop(payload)  # one echo per sent payload
        else:
            return None
        rtt = now - sent_at
        self.count += 1
        self.total += rtt
        self.minimum = min(self.minimum, rtt)
        self.maximum = max(self.maximum, rtt)
        return rtt

    @property
    def average(self) -> float | None:
        return self.total / self.count if self.count else None

"""RFC 4733 telephone-event payloads: the packets that carry one DTMF digit, and their reader."""

from __future__ import annotations

import struct
from dataclasses import dataclass

#: Event codes 0..15 of RFC 4733 §3.2, in order.
DTMF_DIGITS = "0123456789*#ABCD"
_EVENT = struct.Struct("!BBH")
#: End packets are sent this many times (RFC 4733 §2.5.1.4).
END_REPEATS = 3


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """The 4-octet payload of RFC 4733 §2.3: event, E bit, volume (-dBm0), duration (ts units)."""

    event: int
    end: bool
    volume: int
    duration: int

    @property
    def digit(self) -> str | None:
        """The DTMF digit of this event, or None for a non-DTMF event code."""
        return DTMF_DIGITS[self.event] if self.event < len(DTMF_DIGITS) else None

    def to_bytes(self) -> bytes:
        return _EVENT.pack(
            self.event, (0x80 if self.end else 0) | (self.volume & 0x3F), self.duration & 0xFFFF
        )


def parse_event(payload: bytes) -> TelephoneEvent:
    """Parse a telephone-event payload; raises ``ValueError`` when it is shorter than 4 octets."""
    if len(payload) < _EVENT.size:
        raise ValueError(f"telephone-event payload of {len(payload)} octets, expected 4")
    event, flags, duration = _EVENT.unpack_from(payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


def event_code(digit: str) -> int:
    """The RFC 4733 event code of a DTMF digit (``0-9 * # A-D``, case-insensitive)."""
    code = DTMF_DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if code < 0:
        raise ValueError(f"{digit!r} is not a DTMF digit (0-9, *, #, A-D)")
    return code


def digit_payloads(
    digit: str, duration: int, packet_duration: int, volume: int = 10
) -> list[tuple[bytes, bool]]:
    """Payloads and marker bits, in send order, for one digit lasting ``duration`` ts units.

    One packet per ``packet_duration`` (the ptime in timestamp units): the first has the
    marker bit, each update carries the duration so far, and the final packet, with the E bit
    and the full duration, is sent ``END_REPEATS`` times. All share the event's start
    timestamp; the caller gives each its own sequence number.
    """
    if duration <= 0 or packet_duration <= 0:
        raise ValueError("event and packet durations must be positive")
    if duration > 0xFFFF:
        raise ValueError(f"event duration {duration} exceeds 16 bits; split it in segments")
    code = event_code(digit)
    updates = -(-duration // packet_duration)
    payloads = [
        (TelephoneEvent(code, False, volume, index * packet_duration).to_bytes(), index == 1)
        for index in range(1, updates)
    ]
    end = TelephoneEvent(code, True, volume, duration).to_bytes()
    payloads.extend((end, not payloads and index == 0) for index in range(END_REPEATS))
    return payloads


class DtmfReceiver:
    """Turns received telephone-event packets into digits, once per event.

    An event is keyed by SSRC and RTP timestamp (RFC 4733 §2.5.2.1), so updates and the
    repeated end packets count once, and a digit is still seen when its end packets are lost.
    """

    def __init__(self) -> None:
        self.digits: list[str] = []
        self._seen: set[tuple[int, int]] = set()

    def receive(self, ssrc: int, timestamp: int, payload: bytes) -> str | None:
        """Feed one packet's payload; returns the digit when it starts a new event."""
        try:
            event = parse_event(payload)
        except ValueError:
            return None
        key = (ssrc, timestamp)
        if key in self._seen or event.digit is None:
            return None
        self._seen.add(key)
        self.digits.append(event.digit)
        return event.digit

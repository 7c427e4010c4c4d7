"""RTP fixed header packing and parsing (RFC 3550 §5.1): CSRC list, header extension, padding."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

RTP_VERSION = 2
_FIXED = struct.Struct("!BBHII")
_EXTENSION = struct.Struct("!HH")


class RtpParseError(ValueError):
    """A datagram that is not a well-formed RTP packet; ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class RtpExtension:
    """Header extension (RFC 3550 §5.3.1): 16-bit profile word and 32-bit-aligned data."""

    profile: int
    data: bytes


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet. ``padding`` is the number of padding octets (0 when the P bit is clear)."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = 0
    version: int = field(default=RTP_VERSION)

    def to_bytes(self) -> bytes:
        """Serialise; raises ``ValueError`` for out-of-range fields."""
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"payload type {self.payload_type} outside 0..127")
        if len(self.csrcs) > 15:
            raise ValueError("at most 15 CSRCs fit in an RTP header")
        if not 0 <= self.padding <= 255:
            raise ValueError(f"padding {self.padding} outside 0..255")
        first = (
            (self.version << 6)
            | (0x20 if self.padding else 0)
            | (0x10 if self.extension else 0)
            | len(self.csrcs)
        )
        second = (0x80 if self.marker else 0) | self.payload_type
        parts = [
            _FIXED.pack(
                first, second, self.sequence & 0xFFFF, self.timestamp & 0xFFFFFFFF, self.ssrc
            )
        ]
        parts.extend(struct.pack("!I", csrc) for csrc in self.csrcs)
        if self.extension is not None:
            if len(self.extension.data) % 4:
                raise ValueError("RTP header extension data must be a multiple of 4 octets")
            parts.append(_EXTENSION.pack(self.extension.profile, len(self.extension.data) // 4))
            parts.append(self.extension.data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes([self.padding]))
        return b"".join(parts)


def parse_rtp(data: bytes) -> RtpPacket:
    """Parse one datagram as RTP; raises ``RtpParseError`` naming the defect."""
    if len(data) < _FIXED.size:
        raise RtpParseError(f"{len(data)} octets is shorter than the 12-octet RTP header")
    first, second, sequence, timestamp, ssrc = _FIXED.unpack_from(data)
    version = first >> 6
    if version != RTP_VERSION:
        raise RtpParseError(f"RTP version {version}, expected 2")
    offset = _FIXED.size
    csrc_count = first & 0x0F
    if len(data) < offset + 4 * csrc_count:
        raise RtpParseError(f"{csrc_count} CSRCs announced but the packet ends first")
    csrcs = struct.unpack_from(f"!{csrc_count}I", data, offset)
    offset += 4 * csrc_count
    extension = None
    if first & 0x10:
        if len(data) < offset + _EXTENSION.size:
            raise RtpParseError("X bit set but no header extension follows")
        profile, words = _EXTENSION.unpack_from(data, offset)
        offset += _EXTENSION.size
        if len(data) < offset + 4 * words:
            raise RtpParseError(f"header extension of {words} words runs past the packet")
        extension = RtpExtension(profile, bytes(data[offset : offset + 4 * words]))
        offset += 4 * words
    end = len(data)
    padding = 0
    if first & 0x20:
        padding = data[-1]
        if padding == 0 or end - padding < offset:
            raise RtpParseError(f"padding count {padding} does not fit the packet")
        end -= padding
    return RtpPacket(
        payload_type=second & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=bytes(data[offset:end]),
        marker=bool(second & 0x80),
        csrcs=tuple(csrcs),
        extension=extension,
        padding=padding,
        version=version,
    )


def looks_like_rtcp(data: bytes) -> bool:
    """True for RTCP multiplexed on the RTP port (RFC 5761 §4: second octet 192..223)."""
    return len(data) >= 2 and data[0] >> 6 == RTP_VERSION and 192 <= data[1] <= 223

"""RTCP sender and receiver reports, SDES and BYE (RFC 3550 §6.4–6.6): pack and parse."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

SR, RR, SDES, BYE = 200, 201, 202, 203
SDES_CNAME = 1
#: Seconds between the NTP epoch (1900) and the Unix epoch (1970).
NTP_UNIX_OFFSET = 2208988800

_HEADER = struct.Struct("!BBH")
_BLOCK = struct.Struct("!IIIIII")
_SENDER_INFO = struct.Struct("!IIIII")


class RtcpParseError(ValueError):
    """A datagram that is not a well-formed RTCP compound packet; ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report block (RFC 3550 §6.4.1)."""

    ssrc: int
    fraction_lost: int  # loss since the last report, in 1/256
    cumulative_lost: int  # signed 24-bit
    highest_sequence: int  # extended highest sequence number received
    jitter: int  # interarrival jitter in timestamp units
    last_sr: int = 0  # middle 32 bits of the NTP time of the last SR received
    delay_since_last_sr: int = 0  # in 1/65536 s

    def to_bytes(self) -> bytes:
        lost = self.cumulative_lost
        lost = max(-0x800000, min(0x7FFFFF, lost)) & 0xFFFFFF
        return _BLOCK.pack(
            self.ssrc,
            ((self.fraction_lost & 0xFF) << 24) | lost,
            self.highest_sequence & 0xFFFFFFFF,
            self.jitter & 0xFFFFFFFF,
            self.last_sr & 0xFFFFFFFF,
            self.delay_since_last_sr & 0xFFFFFFFF,
        )


@dataclass(frozen=True, slots=True)
class SenderReport:
    """SR: sender info plus reception report blocks."""

    ssrc: int
    ntp_timestamp: int  # 64-bit NTP time
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()

    @property
    def ntp_middle(self) -> int:
        """The middle 32 bits of the NTP timestamp, echoed in a report block's LSR."""
        return (self.ntp_timestamp >> 16) & 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR: reception report blocks from a participant that sent no RTP."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES: per-source items (type code → text); CNAME is item 1."""

    chunks: tuple[tuple[int, tuple[tuple[int, str], ...]], ...]

    def cname(self, ssrc: int) -> str | None:
        for source, items in self.chunks:
            if source == ssrc:
                return next((text for kind, text in items if kind == SDES_CNAME), None)
        return None


@dataclass(frozen=True, slots=True)
class Goodbye:
    """BYE: the sources leaving, with an optional reason."""

    ssrcs: tuple[int, ...]
    reason: str = ""


@dataclass(frozen=True, slots=True)
class UnknownRtcp:
    """An RTCP packet type this module does not interpret (APP, feedback, XR…)."""

    packet_type: int
    count: int
    body: bytes = field(repr=False)


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Goodbye | UnknownRtcp


def ntp_from_unix(seconds: float) -> int:
    """A Unix time in seconds as a 64-bit NTP timestamp."""
    return int((seconds + NTP_UNIX_OFFSET) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def ntp_middle_from_unix(seconds: float) -> int:
    """The middle 32 bits of the NTP timestamp of a Unix time (unit 1/65536 s)."""
    return (ntp_from_unix(seconds) >> 16) & 0xFFFFFFFF


def _with_header(packet_type: int, count: int, body: bytes) -> bytes:
    if len(body) % 4:
        raise ValueError("RTCP body must be a multiple of 4 octets")
    if count > 31:
        raise ValueError("at most 31 report blocks, sources or chunks in one RTCP packet")
    return _HEADER.pack(0x80 | count, packet_type, len(body) // 4) + body


def _pad4(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def pack_packet(packet: RtcpPacket) -> bytes:
    """Serialise one RTCP packet (with its common header)."""
    if isinstance(packet, SenderReport):
        body = _SENDER_INFO.pack(
            packet.ssrc,
            packet.ntp_timestamp >> 32,
            packet.ntp_timestamp & 0xFFFFFFFF,
            packet.rtp_timestamp & 0xFFFFFFFF,
            packet.packet_count & 0xFFFFFFFF,
        ) + struct.pack("!I", packet.octet_count & 0xFFFFFFFF)
        body += b"".join(block.to_bytes() for block in packet.reports)
        return _with_header(SR, len(packet.reports), body)
    if isinstance(packet, ReceiverReport):
        body = struct.pack("!I", packet.ssrc) + b"".join(b.to_bytes() for b in packet.reports)
        return _with_header(RR, len(packet.reports), body)
    if isinstance(packet, SourceDescription):
        chunks = []
        for ssrc, items in packet.chunks:
            chunk = struct.pack("!I", ssrc)
            for kind, text in items:
                raw = text.encode()[:255]
                chunk += bytes([kind, len(raw)]) + raw
            chunk += b"\x00"  # end of the item list, then pad to 32 bits
            chunks.append(_pad4(chunk))
        return _with_header(SDES, len(packet.chunks), b"".join(chunks))
    if isinstance(packet, Goodbye):
        body = b"".join(struct.pack("!I", ssrc) for ssrc in packet.ssrcs)
        if packet.reason:
            raw = packet.reason.encode()[:255]
            body += _pad4(bytes([len(raw)]) + raw)
        return _with_header(BYE, len(packet.ssrcs), body)
    return _with_header(packet.packet_type, packet.count, packet.body)


def pack_compound(packets: list[RtcpPacket]) -> bytes:
    """Serialise a compound packet (RFC 3550 §6.1: SR or RR first, then SDES, BYE last)."""
    return b"".join(pack_packet(packet) for packet in packets)


def _blocks(body: bytes, offset: int, count: int) -> tuple[ReportBlock, ...]:
    blocks = []
    for index in range(count):
        start = offset + index * _BLOCK.size
        if start + _BLOCK.size > len(body):
            raise RtcpParseError(f"report block {index + 1} of {count} runs past the packet")
        ssrc, lost_word, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(body, start)
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        blocks.append(ReportBlock(ssrc, lost_word >> 24, lost, highest, jitter, lsr, dlsr))
    return tuple(blocks)


def _parse_sdes(body: bytes, count: int) -> SourceDescription:
    chunks = []
    offset = 0
    for _ in range(count):
        if offset + 4 > len(body):
            raise RtcpParseError("SDES chunk runs past the packet")
        (ssrc,) = struct.unpack_from("!I", body, offset)
        offset += 4
        items = []
        while offset < len(body) and body[offset] != 0:
            if offset + 2 > len(body) or offset + 2 + body[offset + 1] > len(body):
                raise RtcpParseError("SDES item runs past the packet")
            kind, length = body[offset], body[offset + 1]
            items.append((kind, body[offset + 2 : offset + 2 + length].decode(errors="replace")))
            offset += 2 + length
        offset += 1
        offset += -offset % 4
        chunks.append((ssrc, tuple(items)))
    return SourceDescription(tuple(chunks))


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket:
    if packet_type == SR:
        if len(body) < 24:
            raise RtcpParseError("SR shorter than its sender info")
        ssrc, ntp_high, ntp_low, rtp_ts, packets = _SENDER_INFO.unpack_from(body)
        (octets,) = struct.unpack_from("!I", body, 20)
        return SenderReport(
            ssrc, (ntp_high << 32) | ntp_low, rtp_ts, packets, octets, _blocks(body, 24, count)
        )
    if packet_type == RR:
        if len(body) < 4:
            raise RtcpParseError("RR without its SSRC")
        return ReceiverReport(struct.unpack_from("!I", body)[0], _blocks(body, 4, count))
    if packet_type == SDES:
        return _parse_sdes(body, count)
    if packet_type == BYE:
        if len(body) < 4 * count:
            raise RtcpParseError(f"BYE announces {count} sources but the packet ends first")
        ssrcs = struct.unpack_from(f"!{count}I", body)
        reason = ""
        if len(body) > 4 * count:
            length = body[4 * count]
            reason = body[4 * count + 1 : 4 * count + 1 + length].decode(errors="replace")
        return Goodbye(tuple(ssrcs), reason)
    return UnknownRtcp(packet_type, count, bytes(body))


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Parse a compound RTCP packet; raises ``RtcpParseError`` naming the first defect."""
    packets: list[RtcpPacket] = []
    offset = 0
    while offset < len(data):
        if offset + _HEADER.size > len(data):
            raise RtcpParseError(f"{len(data) - offset} stray octets after the last packet")
        first, packet_type, words = _HEADER.unpack_from(data, offset)
        if first >> 6 != 2:
            raise RtcpParseError(f"RTCP version {first >> 6} at octet {offset}, expected 2")
        end = offset + 4 + 4 * words
        if end > len(data):
            raise RtcpParseError(f"packet at octet {offset} claims {4 * words} octets, too long")
        body = data[offset + 4 : end]
        if first & 0x20:
            if not body or body[-1] == 0 or body[-1] > len(body):
                raise RtcpParseError(f"bad padding count in the packet at octet {offset}")
            body = body[: -body[-1]]
        packets.append(_parse_one(packet_type, first & 0x1F, body))
        offset = end
    if not packets:
        raise RtcpParseError("empty RTCP packet")
    return packets

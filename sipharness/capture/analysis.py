"""Read a pcap into SIP and RTP packets with capture times: IP fragments and TCP streams are
reassembled, SIP is parsed by our own lossless parser, RTP is decoded from its header."""

from __future__ import annotations

import re
import socket
import struct
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sipharness.sip.message import Request, Response, SipParseError, StreamParser, parse_message

SipMessage = Request | Response

# First line of a SIP request ("INVITE sip:... SIP/2.0") or response ("SIP/2.0 200 OK").
_SIP_FIRST_LINE = rb"(?:[!%*+.0-9A-Za-z_`'~-]+ [^ \r\n]+ SIP/\d\.\d|SIP/\d\.\d \d{3})"
_SIP_START = re.compile(rb"^" + _SIP_FIRST_LINE)
_SIP_START_LINE = re.compile(rb"(?m)^" + _SIP_FIRST_LINE)
_SIP_SNIFF_LIMIT = 4096  # bytes of a TCP stream searched for a SIP start line
_RTCP_TYPES = range(192, 224)


def endpoint(ip: str, port: int) -> str:
    """``ip:port``, with IPv6 addresses in brackets."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def split_endpoint(text: str) -> tuple[str, int]:
    """Inverse of :func:`endpoint`."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class SipPacket:
    """One SIP message as seen on the wire.

    ``size`` is the UDP payload (or TCP message) length; ``fragmented`` says the datagram
    arrived in more than one IP fragment; ``time`` is when its last byte was captured.
    ``message`` is None when our parser refused the bytes (``error`` says why).
    """

    time: float
    src: str
    dst: str
    transport: str
    message: SipMessage | None
    raw: bytes
    size: int
    fragmented: bool
    dscp: int
    fragments: int = 1
    error: str = ""

    @property
    def src_port(self) -> int:
        return split_endpoint(self.src)[1]

    @property
    def dst_port(self) -> int:
        return split_endpoint(self.dst)[1]

    @property
    def is_request(self) -> bool:
        return isinstance(self.message, Request)

    @property
    def method(self) -> str | None:
        """The request method, or the CSeq method of a response."""
        if isinstance(self.message, Request):
            return self.message.method
        cseq = self.message.cseq if self.message is not None else None
        return cseq[1] if cseq else None

    @property
    def status(self) -> int | None:
        return self.message.status if isinstance(self.message, Response) else None

    @property
    def call_id(self) -> str | None:
        return self.message.call_id if self.message is not None else None

    @property
    def cseq(self) -> tuple[int, str] | None:
        return self.message.cseq if self.message is not None else None


@dataclass(frozen=True)
class RtpPacket:
    """One RTP packet (RFC 3550 fixed header) with its capture time and DSCP."""

    time: float
    src: str
    dst: str
    ssrc: int
    seq: int
    ts: int
    pt: int
    marker: bool
    size: int
    dscp: int


@dataclass
class Trace:
    """Everything :func:`read_pcap` found in one capture, in capture order."""

    sip: list[SipPacket] = field(default_factory=list)
    rtp: list[RtpPacket] = field(default_factory=list)
    frames: int = 0
    other_udp: int = 0
    start: float | None = None
    end: float | None = None
    notes: list[str] = field(default_factory=list)

    def media_addresses(self) -> set[str]:
        """Every ``ip:port`` an SDP body in the trace announced for media (c= + m=)."""
        found: set[str] = set()
        for packet in self.sip:
            if packet.message is not None:
                found.update(sdp_media_addresses(packet.message.body))
        return found


def sdp_media_addresses(body: bytes) -> set[str]:
    """``ip:port`` of each non-zero-port m= line of an SDP body, using the closest c= line."""
    found: set[str] = set()
    session_addr: str | None = None
    media_addr: str | None = None
    ports: list[int] = []

    def flush() -> None:
        addr = media_addr or session_addr
        if addr:
            found.update(endpoint(addr, p) for p in ports if p)

    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith("m="):
            flush()
            media_addr = None
            parts = line[2:].split()
            ports = (
                [int(parts[1].split("/")[0])] if len(parts) > 1 and parts[1][:1].isdigit() else []
            )
        elif line.startswith("c="):
            parts = line[2:].split()
            addr = parts[2].split("/")[0] if len(parts) >= 3 else None
            if ports or media_addr is not None:
                media_addr = addr
            else:
                session_addr = addr
    flush()
    return found


def looks_like_sip(payload: bytes) -> bool:
    """True when the payload starts like a SIP request or status line."""
    return bool(_SIP_START.match(payload))


def decode_rtp(payload: bytes) -> tuple[int, int, int, int, bool] | None:
    """(ssrc, seq, ts, pt, marker) of an RTP version 2 packet, or None (also for RTCP)."""
    if len(payload) < 12 or payload[0] >> 6 != 2:
        return None
    if payload[1] in _RTCP_TYPES:
        return None
    csrc = payload[0] & 0x0F
    if len(payload) < 12 + 4 * csrc:
        return None
    seq, ts, ssrc = struct.unpack("!HII", payload[2:12])
    return ssrc, seq, ts, payload[1] & 0x7F, bool(payload[1] & 0x80)


def _plausible_rtp(pt: int) -> bool:
    return pt <= 34 or 96 <= pt <= 127


@dataclass
class _Datagram:
    time: float
    src: str
    dst: str
    payload: bytes
    dscp: int
    fragments: int


@dataclass
class _Segment:
    time: float
    seq: int
    payload: bytes
    syn: bool
    dscp: int


class _FragmentBuffer:
    """IPv4/IPv6 fragment reassembly keyed by (src, dst, protocol, id)."""

    def __init__(self) -> None:
        self._parts: dict[tuple[Any, ...], dict[int, bytes]] = defaultdict(dict)
        self._total: dict[tuple[Any, ...], int] = {}

    def add(
        self, key: tuple[Any, ...], offset: int, data: bytes, more: bool
    ) -> tuple[bytes, int] | None:
        """Add one fragment; return (payload, fragment count) once the datagram is whole."""
        parts = self._parts[key]
        parts[offset] = data
        if not more:
            self._total[key] = offset + len(data)
        total = self._total.get(key)
        if total is None:
            return None
        buf = bytearray(total)
        covered = 0
        for off in sorted(parts):
            if off > covered:
                return None
            chunk = parts[off]
            buf[off : off + len(chunk)] = chunk
            covered = max(covered, off + len(chunk))
        if covered < total:
            return None
        count = len(parts)
        del self._parts[key], self._total[key]
        return bytes(buf[:total]), count


_ETHERTYPE_IPV4, _ETHERTYPE_IPV6 = 0x0800, 0x86DD
_VLAN_TAGS = (0x8100, 0x88A8, 0x9100)
_IPV6_EXTENSIONS = (0, 43, 60)  # hop-by-hop, routing, destination options


def _frames(path: str | Path) -> Iterator[tuple[float, int, bytes]]:
    """(capture time, link type, frame bytes) of every frame of a pcap or pcapng file."""
    from scapy.utils import RawPcapNgReader, RawPcapReader

    with RawPcapReader(str(path)) as reader:
        ng = isinstance(reader, RawPcapNgReader)
        scale = 1e9 if getattr(reader, "nano", False) else 1e6
        for data, header in reader:
            meta: Any = header
            if ng:
                yield ((meta.tshigh << 32) + meta.tslow) / meta.tsresol, meta.linktype, data
            else:
                yield meta.sec + meta.usec / scale, reader.linktype, data


def _network_layer(linktype: int, data: bytes) -> bytes | None:
    """The IP packet inside a frame of the given link type, or None."""
    if linktype == 1:  # Ethernet, possibly VLAN-tagged
        offset, ethertype = 14, int.from_bytes(data[12:14], "big")
        while ethertype in _VLAN_TAGS and len(data) >= offset + 4:
            ethertype = int.from_bytes(data[offset + 2 : offset + 4], "big")
            offset += 4
        return data[offset:] if ethertype in (_ETHERTYPE_IPV4, _ETHERTYPE_IPV6) else None
    if linktype in (0, 108):  # BSD loopback: 4-byte address family
        return data[4:]
    if linktype in (12, 14, 101, 228, 229):  # raw IP
        return data
    if linktype == 113:  # Linux cooked v1
        proto = int.from_bytes(data[14:16], "big")
        return data[16:] if proto in (_ETHERTYPE_IPV4, _ETHERTYPE_IPV6) else None
    if linktype == 276:  # Linux cooked v2
        proto = int.from_bytes(data[0:2], "big")
        return data[20:] if proto in (_ETHERTYPE_IPV4, _ETHERTYPE_IPV6) else None
    return _network_layer_by_scapy(linktype, data)


def _network_layer_by_scapy(linktype: int, data: bytes) -> bytes | None:
    from scapy.config import conf
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6

    cls = conf.l2types.num2layer.get(linktype)
    if cls is None:
        return None
    frame = cls(data)
    layer = frame.getlayer(IP) or frame.getlayer(IPv6)
    return bytes(layer) if layer is not None else None


def _transport_units(path: str | Path, trace: Trace) -> Iterator[tuple[str, Any]]:
    """Yield ("udp", _Datagram) and ("tcp", (flow key, _Segment)) in capture order."""
    fragments = _FragmentBuffer()
    for t, linktype, frame in _frames(path):
        trace.frames += 1
        trace.start = t if trace.start is None else min(trace.start, t)
        trace.end = t if trace.end is None else max(trace.end, t)
        packet = _network_layer(linktype, frame)
        if not packet:
            continue
        version = packet[0] >> 4
        if version == 4 and len(packet) >= 20:
            ihl = (packet[0] & 0x0F) * 4
            total = int.from_bytes(packet[2:4], "big")
            ident = int.from_bytes(packet[4:6], "big")
            flags_frag = int.from_bytes(packet[6:8], "big")
            dscp, proto = packet[1] >> 2, packet[9]
            src = socket.inet_ntop(socket.AF_INET, packet[12:16])
            dst = socket.inet_ntop(socket.AF_INET, packet[16:20])
            payload = packet[ihl:total] if total else packet[ihl:]
            more, offset = bool(flags_frag & 0x2000), (flags_frag & 0x1FFF) * 8
            if more or offset:
                done = fragments.add((src, dst, proto, ident), offset, payload, more)
                if done is None:
                    continue
                yield from _from_l4(t, src, dst, proto, done[0], dscp, done[1])
            else:
                yield from _from_l4(t, src, dst, proto, payload, dscp, 1)
        elif version == 6 and len(packet) >= 40:
            dscp = (((packet[0] & 0x0F) << 4) | (packet[1] >> 4)) >> 2
            plen, proto = int.from_bytes(packet[4:6], "big"), packet[6]
            src = socket.inet_ntop(socket.AF_INET6, packet[8:24])
            dst = socket.inet_ntop(socket.AF_INET6, packet[24:40])
            payload = packet[40 : 40 + plen] if plen else packet[40:]
            fragment: tuple[int, bool, int] | None = None
            while len(payload) >= 8:
                if proto in _IPV6_EXTENSIONS:
                    proto, payload = payload[0], payload[(payload[1] + 1) * 8 :]
                elif proto == 51:  # authentication header
                    proto, payload = payload[0], payload[(payload[1] + 2) * 4 :]
                elif proto == 44:
                    word = int.from_bytes(payload[2:4], "big")
                    ident = int.from_bytes(payload[4:8], "big")
                    fragment = ((word >> 3) * 8, bool(word & 1), ident)
                    proto, payload = payload[0], payload[8:]
                else:
                    break
            if fragment is not None:
                offset, more, ident = fragment
                done = fragments.add((src, dst, proto, ident), offset, payload, more)
                if done is None:
                    continue
                yield from _from_l4(t, src, dst, proto, done[0], dscp, done[1])
            else:
                yield from _from_l4(t, src, dst, proto, payload, dscp, 1)


def _from_l4(
    t: float, src: str, dst: str, proto: int, data: bytes, dscp: int, fragments: int
) -> Iterator[tuple[str, Any]]:
    if proto == 17 and len(data) >= 8:
        sport, dport, length = struct.unpack("!HHH", data[:6])
        payload = data[8:length] if 8 <= length <= len(data) else data[8:]
        yield (
            "udp",
            _Datagram(t, endpoint(src, sport), endpoint(dst, dport), payload, dscp, fragments),
        )
    elif proto == 6 and len(data) >= 20:
        sport, dport, seq = struct.unpack("!HHI", data[:8])
        offset = (data[12] >> 4) * 4
        syn = bool(data[13] & 0x02)
        key = (endpoint(src, sport), endpoint(dst, dport))
        yield "tcp", (key, _Segment(t, seq, data[offset:], syn, dscp))


class _TcpDirection:
    """One direction of a TCP connection: orders segments by sequence number, drops
    retransmitted and overlapping bytes, and frames SIP messages with our StreamParser."""

    def __init__(self, src: str, dst: str) -> None:
        self.src, self.dst = src, dst
        self.base: int | None = None
        self.next = 0
        self.pending: dict[int, _Segment] = {}
        self.parser = StreamParser()
        self.is_sip: bool | None = None
        self.head = b""
        self.gaps = 0

    def add(self, seg: _Segment) -> list[SipPacket]:
        if seg.syn:
            self.base = (seg.seq + 1) & 0xFFFFFFFF
            return []
        if not seg.payload:
            return []
        if self.base is None:
            self.base = seg.seq
        rel = (seg.seq - self.base) & 0xFFFFFFFF
        if rel >= 0x80000000:
            return []
        held = self.pending.get(rel)
        if held is None or len(held.payload) < len(seg.payload):
            self.pending[rel] = seg
        return self._drain()

    def _drain(self) -> list[SipPacket]:
        out: list[SipPacket] = []
        while self.pending:
            rel = min(self.pending)
            if rel > self.next:
                break
            seg = self.pending.pop(rel)
            end = rel + len(seg.payload)
            if end > self.next:
                out.extend(self._feed(seg.payload[self.next - rel :], seg))
                self.next = end
        return out

    def flush_gaps(self) -> list[SipPacket]:
        """At the end of the capture, skip over missing bytes (counted in ``gaps``)."""
        out: list[SipPacket] = []
        while self.pending:
            rel = min(self.pending)
            if rel > self.next:
                self.gaps += 1
                self.parser = StreamParser()
                self.next = rel
            out.extend(self._drain())
        return out

    def _feed(self, data: bytes, seg: _Segment) -> list[SipPacket]:
        if self.is_sip is None:
            # SIP when a SIP start line shows up (maybe after the tail of a message the
            # capture began in the middle of); another protocol if none in the first 4 KiB
            self.head += data
            start = _SIP_START_LINE.search(self.head)
            if start is None and len(self.head) < _SIP_SNIFF_LIMIT:
                return []
            self.is_sip = start is not None
            data, self.head = (self.head[start.start() :] if start else b""), b""
        if not self.is_sip:
            return []
        try:
            messages = self.parser.feed(data)
        except SipParseError as exc:
            self.parser = StreamParser()
            return [
                SipPacket(
                    seg.time,
                    self.src,
                    self.dst,
                    "TCP",
                    None,
                    data,
                    len(data),
                    False,
                    seg.dscp,
                    1,
                    str(exc),
                )
            ]
        packets = []
        for message in messages:
            raw = message.to_bytes()
            packets.append(
                SipPacket(
                    seg.time, self.src, self.dst, "TCP", message, raw, len(raw), False, seg.dscp
                )
            )
        return packets


def _sip_from_datagram(d: _Datagram) -> SipPacket:
    try:
        message: SipMessage | None = parse_message(d.payload)
        error = ""
    except SipParseError as exc:
        message, error = None, str(exc)
    return SipPacket(
        d.time,
        d.src,
        d.dst,
        "UDP",
        message,
        d.payload,
        len(d.payload),
        d.fragments > 1,
        d.dscp,
        d.fragments,
        error,
    )


def read_pcap(path: str | Path, *, rtp_heuristic: bool = True) -> Trace:
    """Read a pcap (Ethernet, loopback, raw IP or Linux cooked) into a :class:`Trace`.

    SIP is recognised by its first line on UDP and TCP. RTP is every UDP datagram to or from
    an address an SDP body of the trace announced, and — with ``rtp_heuristic`` — any other
    non-SIP datagram with an RTP version 2 header and a plausible payload type.
    """
    trace = Trace()
    datagrams: list[_Datagram] = []
    directions: dict[tuple[str, str], _TcpDirection] = {}
    for kind, unit in _transport_units(path, trace):
        if kind == "udp":
            if looks_like_sip(unit.payload):
                trace.sip.append(_sip_from_datagram(unit))
            else:
                datagrams.append(unit)
        else:
            key, seg = unit
            direction = directions.get(key)
            if direction is None:
                direction = directions[key] = _TcpDirection(*key)
            trace.sip.extend(direction.add(seg))
    for direction in directions.values():
        trace.sip.extend(direction.flush_gaps())
        if direction.gaps:
            trace.notes.append(
                f"TCP {direction.src} -> {direction.dst}: {direction.gaps} gap(s) in the stream"
            )
    trace.sip.sort(key=lambda p: p.time)
    media = trace.media_addresses()
    for d in datagrams:
        decoded = decode_rtp(d.payload)
        announced = d.dst in media or d.src in media
        if decoded is None or not (announced or (rtp_heuristic and _plausible_rtp(decoded[3]))):
            trace.other_udp += 1
            continue
        ssrc, seq, ts, pt, marker = decoded
        trace.rtp.append(
            RtpPacket(d.time, d.src, d.dst, ssrc, seq, ts, pt, marker, len(d.payload), d.dscp)
        )
    return trace


def sip_label(packet: SipPacket) -> str:
    """A short ladder label: ``INVITE (CSeq 1)``, ``200 OK (INVITE)``, or the first line."""
    message = packet.message
    if isinstance(message, Request):
        cseq = message.cseq
        return f"{message.method} (CSeq {cseq[0]})" if cseq else message.method
    if isinstance(message, Response):
        cseq = message.cseq
        text = f"{message.status} {message.reason}".strip()
        return f"{text} ({cseq[1]})" if cseq else text
    first = packet.raw.split(b"\r\n", 1)[0][:60].decode("utf-8", "replace")
    return f"unparseable: {first}"


def sip_packets(trace: Trace, *, transport: str | None = None) -> Iterable[SipPacket]:
    """The parsed SIP packets of a trace, optionally of one transport ("UDP", "TCP")."""
    return (
        p
        for p in trace.sip
        if p.message is not None and (transport is None or p.transport == transport)
    )

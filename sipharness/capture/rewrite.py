"""Rewrite the UDP and TCP payloads of a pcap copy in place (same lengths), reassembling IP
fragments and TCP streams first so a value split across packets is still found."""

from __future__ import annotations

import socket
import struct
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Transform = Callable[[bytes], bytes]


@dataclass
class _Piece:
    frame: int
    offset: int
    length: int


def _stream_bytes(pieces: list[_Piece], chunks: dict[int, bytes]) -> bytearray:
    size = max((p.offset + p.length for p in pieces), default=0)
    buf = bytearray(size)
    for p in pieces:
        buf[p.offset : p.offset + p.length] = chunks[p.frame]
    return buf


def rewrite_pcap(source: str | Path, target: str | Path, transform: Transform) -> int:
    """Copy ``source`` to ``target`` with ``transform`` applied to every UDP datagram and
    every TCP stream; ``transform`` must keep the length. Returns frames rewritten."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment
    from scapy.packet import Raw
    from scapy.utils import PcapReader, PcapWriter

    with PcapReader(str(source)) as reader:
        frames: list[Any] = list(reader)
        linktype = reader.linktype

    # L4 bytes (UDP header + payload, or IP fragment data) of the frames we may rewrite.
    l4: dict[int, bytes] = {}
    udp_groups: dict[tuple[Any, ...], list[_Piece]] = defaultdict(list)
    tcp_groups: dict[tuple[Any, ...], list[_Piece]] = defaultdict(list)
    tcp_base: dict[tuple[Any, ...], int] = {}
    ip_of: dict[int, Any] = {}
    for i, frame in enumerate(frames):
        ip = frame.getlayer(IP) or frame.getlayer(IPv6)
        if ip is None:
            continue
        ip_of[i] = ip
        frag6 = ip.getlayer(IPv6ExtHdrFragment) if isinstance(ip, IPv6) else None
        if isinstance(ip, IP) and (ip.flags.MF or ip.frag):
            data = bytes(ip.payload)[: max(0, ip.len - ip.ihl * 4)] if ip.len else bytes(ip.payload)
            l4[i] = data
            udp_groups[("frag", ip.src, ip.dst, ip.proto, ip.id)].append(
                _Piece(i, ip.frag * 8, len(data))
            )
        elif frag6 is not None:
            data = bytes(frag6.payload)
            l4[i] = data
            udp_groups[("frag", ip.src, ip.dst, frag6.nh, frag6.id)].append(
                _Piece(i, frag6.offset * 8, len(data))
            )
        elif ip.haslayer(UDP):
            udp = ip[UDP]
            data = bytes(udp)
            l4[i] = data
            udp_groups[("udp", i)].append(_Piece(i, 0, len(data)))
        elif ip.haslayer(TCP):
            tcp = ip[TCP]
            payload = bytes(tcp.payload)
            if isinstance(ip, IP) and ip.len:
                payload = payload[: max(0, ip.len - ip.ihl * 4 - tcp.dataofs * 4)]
            key = (ip.src, tcp.sport, ip.dst, tcp.dport)
            if tcp.flags.S:
                tcp_base[key] = (tcp.seq + 1) & 0xFFFFFFFF
            if not payload:
                continue
            base = tcp_base.setdefault(key, tcp.seq)
            rel = (tcp.seq - base) & 0xFFFFFFFF
            if rel >= 0x80000000:
                continue
            l4[i] = payload
            tcp_groups[key].append(_Piece(i, rel, len(payload)))

    new_l4: dict[int, bytes] = {}
    for key, pieces in udp_groups.items():
        datagram = _stream_bytes(pieces, l4)
        if key[0] == "frag" and (len(datagram) < 8 or key[3] != 17):
            continue
        redacted = transform(bytes(datagram[8:]))
        if redacted == bytes(datagram[8:]):
            continue
        if len(redacted) != len(datagram) - 8:
            raise ValueError("the pcap transform must keep the payload length")
        datagram[8:] = redacted
        if datagram[6:8] != b"\x00\x00":
            datagram[6:8] = _udp_checksum(ip_of[pieces[0].frame], bytes(datagram))
        for p in pieces:
            new_l4[p.frame] = bytes(datagram[p.offset : p.offset + p.length])
    for pieces in tcp_groups.values():
        stream = _stream_bytes(pieces, l4)
        redacted = transform(bytes(stream))
        if redacted == bytes(stream):
            continue
        if len(redacted) != len(stream):
            raise ValueError("the pcap transform must keep the stream length")
        for p in pieces:
            new_l4[p.frame] = redacted[p.offset : p.offset + p.length]

    rewritten = 0
    with PcapWriter(str(target), linktype=linktype, sync=False) as writer:
        for i, frame in enumerate(frames):
            if i in new_l4 and new_l4[i] != l4[i]:
                ip = ip_of[i]
                if ip.haslayer(TCP) and not (isinstance(ip, IP) and (ip.flags.MF or ip.frag)):
                    tcp = ip[TCP]
                    tcp.remove_payload()
                    tcp.add_payload(Raw(new_l4[i]))
                    del tcp.chksum
                else:
                    carrier = ip.getlayer(IPv6ExtHdrFragment) if isinstance(ip, IPv6) else ip
                    if carrier is None:
                        carrier = ip
                    carrier.remove_payload()
                    carrier.add_payload(Raw(new_l4[i]))
                rebuilt = frame.__class__(bytes(frame))
                rebuilt.time = frame.time
                frame = rebuilt
                rewritten += 1
            writer.write(frame)
    return rewritten


def _udp_checksum(ip: Any, udp_bytes: bytes) -> bytes:
    """The UDP checksum of ``udp_bytes`` (its checksum field ignored) under ``ip``."""
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import in6_chksum
    from scapy.utils import checksum

    zeroed = udp_bytes[:6] + b"\x00\x00" + udp_bytes[8:]
    if isinstance(ip, IP):
        pseudo = (
            socket.inet_aton(ip.src)
            + socket.inet_aton(ip.dst)
            + struct.pack("!BBH", 0, 17, len(zeroed))
        )
        value = checksum(pseudo + zeroed)
    else:
        value = in6_chksum(17, ip, zeroed)
    value = 0xFFFF if value == 0 else value
    return value.to_bytes(2, "big")

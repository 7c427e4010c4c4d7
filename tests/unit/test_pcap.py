"""read_pcap and the packet checks, on pcaps the tests write with scapy."""

from __future__ import annotations

import itertools
import struct
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

from sipharness.capture import (
    MessageMatch,
    dscp,
    largest_sip_datagram,
    read_pcap,
    responses_to_source_port,
    retransmission_schedule,
    rtp_flow,
    run_check,
)

UAC, UAS = "127.0.0.1", "127.0.0.2"
UAC_PORT, UAS_PORT = 5070, 5060
CALLER_RTP, BRIDGE_RTP = 20000, 20002


def sdp(port: int, ip: str) -> bytes:
    return (
        f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    ).encode()


def request(method: str, cseq: int, *, body: bytes = b"", extra: str = "", via: str = "") -> bytes:
    via = via or f"SIP/2.0/UDP {UAC}:{UAC_PORT};branch=z9hG4bK-{method}-{cseq};rport"
    head = (
        f"{method} sip:abc-defg-hij@{UAS} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n"
        f"From: <sip:alice@{UAC}>;tag=a1\r\nTo: <sip:abc-defg-hij@{UAS}>\r\n"
        f"Call-ID: call-1@{UAC}\r\nCSeq: {cseq} {method}\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def response(
    status: int, reason: str, method: str, cseq: int, *, via: str = "", body: bytes = b""
) -> bytes:
    via = via or (
        f"SIP/2.0/UDP {UAC}:{UAC_PORT};branch=z9hG4bK-{method}-{cseq}"
        f";rport={UAC_PORT};received={UAC}"
    )
    head = (
        f"SIP/2.0 {status} {reason}\r\nVia: {via}\r\n"
        f"From: <sip:alice@{UAC}>;tag=a1\r\nTo: <sip:abc-defg-hij@{UAS}>;tag=b2\r\n"
        f"Call-ID: call-1@{UAC}\r\nCSeq: {cseq} {method}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def udp(
    t: float,
    payload: bytes,
    *,
    to_uas: bool,
    tos: int = 0,
    dport: int | None = None,
    sport: int | None = None,
) -> Packet:
    src, dst = (UAC, UAS) if to_uas else (UAS, UAC)
    s = sport or (UAC_PORT if to_uas else UAS_PORT)
    d = dport or (UAS_PORT if to_uas else UAC_PORT)
    pkt = Ether() / IP(src=src, dst=dst, tos=tos) / UDP(sport=s, dport=d) / Raw(payload)
    pkt.time = t
    return pkt


def rtp(
    t: float,
    seq: int,
    ts: int,
    *,
    to_bridge: bool,
    ssrc: int = 0x1234,
    tos: int = 0,
    marker: bool = False,
) -> Packet:
    header = struct.pack("!BBHII", 0x80, (0x80 if marker else 0), seq, ts, ssrc)
    src, dst = (UAC, UAS) if to_bridge else (UAS, UAC)
    sport, dport = (CALLER_RTP, BRIDGE_RTP) if to_bridge else (BRIDGE_RTP, CALLER_RTP)
    pkt = (
        Ether()
        / IP(src=src, dst=dst, tos=tos)
        / UDP(sport=sport, dport=dport)
        / Raw(header + b"\xff" * 160)
    )
    pkt.time = t
    return pkt


def write(tmp_path: Path, packets: list[Packet]) -> Path:
    path = tmp_path / "t.pcap"
    wrpcap(str(path), packets)
    return path


def call(
    ok_times: list[float],
    *,
    ack_at: float | None,
    bye_at: float | None = None,
    rtp_until: float | None = None,
    tos: int = 0,
) -> list[Packet]:
    """INVITE at 0, 100, 200 OK sent at each of ok_times, ACK, RTP both ways, BYE, 200."""
    packets = [
        udp(
            0.0,
            request(
                "INVITE", 1, body=sdp(CALLER_RTP, UAC), extra="Content-Type: application/sdp\r\n"
            ),
            to_uas=True,
            tos=tos,
        ),
        udp(0.01, response(100, "Trying", "INVITE", 1), to_uas=False, tos=tos),
    ]
    ok = response(200, "OK", "INVITE", 1, body=sdp(BRIDGE_RTP, UAS))
    packets += [udp(t, ok, to_uas=False, tos=tos) for t in ok_times]
    if ack_at is not None:
        packets.append(udp(ack_at, request("ACK", 1), to_uas=True, tos=tos))
        start = ack_at + 0.05
        end = rtp_until if rtp_until is not None else (bye_at or start + 0.5)
        n = int((end - start) / 0.02)
        for i in range(n):
            packets.append(rtp(start + i * 0.02, 100 + i, 1000 + 160 * i, to_bridge=True, tos=tos))
            packets.append(
                rtp(start + i * 0.02 + 0.001, 7 + i, 160 * i, to_bridge=False, ssrc=0xBEEF, tos=tos)
            )
    if bye_at is not None:
        packets.append(udp(bye_at, request("BYE", 2), to_uas=True, tos=tos))
        packets.append(udp(bye_at + 0.01, response(200, "OK", "BYE", 2), to_uas=False, tos=tos))
    return sorted(packets, key=lambda p: float(p.time))


def test_udp_sip_is_parsed_with_times_addresses_and_dscp(tmp_path: Path) -> None:
    trace = read_pcap(write(tmp_path, call([0.1], ack_at=0.11, bye_at=0.5, tos=0xB8)))
    labels = [(p.method, p.status) for p in trace.sip]
    assert labels == [
        ("INVITE", None),
        ("INVITE", 100),
        ("INVITE", 200),
        ("ACK", None),
        ("BYE", None),
        ("BYE", 200),
    ]
    invite = trace.sip[0]
    assert invite.src == f"{UAC}:{UAC_PORT}" and invite.dst == f"{UAS}:{UAS_PORT}"
    assert invite.transport == "UDP" and invite.dscp == 46 and not invite.fragmented
    assert invite.size == len(invite.raw) and invite.message is not None
    assert invite.message.to_bytes() == invite.raw
    assert trace.sip[2].time == pytest.approx(0.1)


def test_fragmented_udp_invite_is_reassembled_and_marked(tmp_path: Path) -> None:
    big = request(
        "INVITE",
        1,
        body=sdp(CALLER_RTP, UAC),
        extra="".join(f"X-Padding-{i}: {'y' * 60}\r\n" for i in range(30)),
    )
    assert len(big) > 1500
    pkt = IP(src=UAC, dst=UAS) / UDP(sport=UAC_PORT, dport=UAS_PORT) / Raw(big)
    frags = [Ether() / f for f in fragment(pkt, fragsize=1200)]
    for i, f in enumerate(reversed(frags)):  # out of order on purpose
        f.time = 1.0 + i * 0.001
    trace = read_pcap(write(tmp_path, list(reversed(frags))))
    assert len(trace.sip) == 1
    packet = trace.sip[0]
    assert packet.raw == big and packet.fragmented and packet.fragments == len(frags) >= 2
    assert packet.time == pytest.approx(1.0 + (len(frags) - 1) * 0.001)
    check = largest_sip_datagram(trace, at_least=1300, fragmented=True)
    assert check.ok, check.message
    refused = largest_sip_datagram(trace, fragmented=False)
    assert not refused.ok and "fragment" in refused.message


def tcp_segments(stream: bytes, cuts: list[int], *, isn: int = 1000) -> list[Packet]:
    """SYN plus the stream cut into segments at ``cuts`` (absolute offsets)."""
    syn = Ether() / IP(src=UAC, dst=UAS) / TCP(sport=40000, dport=5060, flags="S", seq=isn)
    syn.time = 0.0
    out: list[Packet] = [syn]
    bounds = [0, *cuts, len(stream)]
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        seg = (
            Ether()
            / IP(src=UAC, dst=UAS)
            / TCP(sport=40000, dport=5060, flags="PA", seq=isn + 1 + a)
            / Raw(stream[a:b])
        )
        seg.time = 0.1 * (i + 1)
        out.append(seg)
    return out


def test_tcp_stream_split_reordered_and_retransmitted_is_framed(tmp_path: Path) -> None:
    first, second = request("OPTIONS", 1), request("OPTIONS", 2)
    stream = first + second
    segments = tcp_segments(stream, [30, len(first) + 10, len(first) + 50])
    # the segment carrying the end of the first message arrives after the next one,
    # and the second segment is retransmitted with extra overlapping bytes
    segments[2], segments[3] = segments[3], segments[2]
    segments[2].time, segments[3].time = 0.2, 0.3
    overlap = segments[2].copy()
    overlap[TCP].seq -= 5
    overlap[Raw].load = stream[len(first) + 5 : len(first) + 50]
    overlap.time = 0.5
    trace = read_pcap(write(tmp_path, [*segments, overlap]))
    assert [p.raw for p in trace.sip] == [first, second]
    assert all(p.transport == "TCP" for p in trace.sip)
    assert trace.sip[0].time == pytest.approx(0.3)  # completed by the late segment


def test_rtp_found_by_sdp_and_checked_for_flow(tmp_path: Path) -> None:
    trace = read_pcap(write(tmp_path, call([0.1], ack_at=0.11, bye_at=1.0)), rtp_heuristic=False)
    assert {p.ssrc for p in trace.rtp} == {0x1234, 0xBEEF}
    check = rtp_flow(trace, after_ack_within=1.0)
    assert check.ok, check.message
    assert "to caller" in check.message and "to bridge" in check.message


def test_rtp_flow_reports_gaps_late_start_and_rtp_after_bye(tmp_path: Path) -> None:
    packets = call([0.1], ack_at=0.11, bye_at=0.6, rtp_until=1.0)
    packets = [
        p
        for p in packets
        if not (
            Raw in p
            and p[Raw].load[:1] == b"\x80"
            and struct.unpack("!H", p[Raw].load[2:4])[0] == 110
        )
    ]
    trace = read_pcap(write(tmp_path, packets))
    check = rtp_flow(trace, after_ack_within=0.01)
    assert not check.ok
    assert "after the ACK" in check.message
    assert "after the BYE" in check.message
    assert "seq 109 -> 111" in check.message


def test_retransmission_schedule_accepts_t1_doubling_until_ack(tmp_path: Path) -> None:
    trace = read_pcap(write(tmp_path, call([0.1, 0.6, 1.6, 3.6], ack_at=3.7)))
    check = retransmission_schedule(trace, MessageMatch(status=200, cseq_method="INVITE"))
    assert check.ok, check.message
    assert "3 retransmission(s)" in check.message


def test_retransmission_schedule_says_what_the_wire_showed_without_repeats(tmp_path: Path) -> None:
    packets = call([0.1], ack_at=None)
    options = udp(4.5, request("OPTIONS", 9), to_uas=True)  # capture goes on to 4.5 s
    trace = read_pcap(write(tmp_path, [*packets, options]))
    check = retransmission_schedule(
        trace, MessageMatch.from_mapping({"status": 200, "cseq_method": "INVITE"})
    )
    assert not check.ok
    assert "expected retransmissions at [0.50, 1.50, 3.50] s" in check.message
    assert "sends at [0.00] s" in check.message


def test_retransmission_schedule_rejects_wrong_intervals_and_repeats_after_ack(
    tmp_path: Path,
) -> None:
    fast = read_pcap(write(tmp_path, call([0.1, 0.3, 0.5, 0.7], ack_at=0.75)))
    check = retransmission_schedule(fast, MessageMatch(status="2xx", cseq_method="INVITE"))
    assert not check.ok and "off schedule" in check.message
    late = read_pcap(write(tmp_path, call([0.1, 0.6, 1.6], ack_at=0.7)))
    check = retransmission_schedule(late, MessageMatch(status=200, cseq_method="INVITE"))
    assert not check.ok and "after it was stopped" in check.message


def test_timer_g_caps_at_t2(tmp_path: Path) -> None:
    times = [0.0, 0.5, 1.5, 3.5, 7.5, 11.5]
    err = response(401, "Unauthorized", "INVITE", 1)
    packets = [udp(0.0, request("INVITE", 1), to_uas=True)]
    packets += [udp(0.01 + t, err, to_uas=False) for t in times]
    packets.append(udp(12.0, request("ACK", 1), to_uas=True))
    trace = read_pcap(write(tmp_path, packets))
    match = MessageMatch(status=401)
    assert retransmission_schedule(trace, match).ok
    uncapped = retransmission_schedule(trace, match, "T1 doubling")
    assert not uncapped.ok and "instead of 8.00 s" in uncapped.message


def test_rport_responses_checked_against_source_port(tmp_path: Path) -> None:
    good = read_pcap(write(tmp_path, call([0.1], ack_at=0.11)))
    assert responses_to_source_port(good).ok
    nat_port = 31000
    packets = [
        udp(0.0, request("OPTIONS", 1), to_uas=True, sport=nat_port),
        udp(
            0.01,
            response(
                200,
                "OK",
                "OPTIONS",
                1,
                via=f"SIP/2.0/UDP {UAC}:{UAC_PORT};branch=z9hG4bK-OPTIONS-1;rport",
            ),
            to_uas=False,
        ),
    ]
    bad = read_pcap(write(tmp_path, packets))
    check = responses_to_source_port(bad)
    assert not check.ok
    assert f"sent to {UAC}:{UAC_PORT}" in check.message and "received=None" in check.message


def test_dscp_by_kind_and_name(tmp_path: Path) -> None:
    trace = read_pcap(write(tmp_path, call([0.1], ack_at=0.11, bye_at=0.4, tos=0xB8)))
    assert dscp(trace, "sip", "EF").ok and dscp(trace, "rtp", 46).ok
    check = dscp(trace, "sip", "CS3")
    assert not check.ok and "DSCP 46" in check.message


def test_ipv6_and_unparseable_sip_are_kept(tmp_path: Path) -> None:
    from scapy.layers.inet6 import IPv6

    good = (
        Ether()
        / IPv6(src="::1", dst="::1", tc=0x60)
        / UDP(sport=5070, dport=5060)
        / Raw(request("OPTIONS", 1))
    )
    good.time = 1.0
    broken = (
        Ether()
        / IP(src=UAC, dst=UAS)
        / UDP(sport=5070, dport=5060)
        / Raw(b"INVITE sip:x SIP/2.0\r\nVia: nonsense\r\n")
    )
    broken.time = 2.0
    trace = read_pcap(write(tmp_path, [good, broken]))
    assert trace.sip[0].src == "[::1]:5070" and trace.sip[0].dscp == 24
    assert trace.sip[1].message is None and trace.sip[1].error


def test_run_check_builds_checks_from_scenario_options(tmp_path: Path) -> None:
    trace = read_pcap(write(tmp_path, call([0.1, 0.6], ack_at=0.7)))
    check = run_check(
        trace,
        "retransmission_schedule",
        {"match": {"status": 200, "cseq_method": "INVITE"}, "t1": 0.5},
    )
    assert check.ok and "1 retransmission(s)" in check.message
    assert not run_check(trace, "dscp", {"kind": "sip", "expected": "EF"}).ok
    with pytest.raises(ValueError, match="known: "):
        run_check(trace, "jitter")
    with pytest.raises(ValueError, match="unknown message match keys: colour"):
        run_check(trace, "retransmission_schedule", {"match": {"colour": "red"}})
    with pytest.raises(ValueError, match="packet check dscp"):
        run_check(trace, "dscp", {"kind": "sip", "expected": 46, "bogus": 1})


def test_capture_unavailable_says_how_to_enable(monkeypatch: pytest.MonkeyPatch) -> None:
    from sipharness.capture import live

    monkeypatch.setattr(live.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(live, "_has_file_caps", lambda path: False)
    monkeypatch.setattr(live, "_can_open_packet_socket", lambda: False)
    monkeypatch.setattr(live.shutil, "which", lambda name: "/usr/bin/tcpdump")
    ok, reason = live.capture_available()
    assert not ok and "setcap cap_net_raw,cap_net_admin=eip" in reason and "uid 1000" in reason
    monkeypatch.setenv("SIPHARNESS_REQUIRE_TOOLS", "1")
    with pytest.raises(pytest.fail.Exception, match="packet capture is unavailable"):
        live.require_capture()
    monkeypatch.setenv("SIPHARNESS_REQUIRE_TOOLS", "0")
    with pytest.raises(pytest.skip.Exception, match="packet checks skipped"):
        live.require_capture()
    monkeypatch.setattr(live, "_has_file_caps", lambda path: True)
    assert live.capture_available() == (True, "tcpdump")


@pytest.mark.parametrize("link", ["ethernet", "vlan", "linux-cooked", "raw-ip", "bsd-loopback"])
def test_link_layers_of_common_captures(tmp_path: Path, link: str) -> None:
    from scapy.layers.l2 import CookedLinux, Dot1Q, Loopback

    ip = (
        IP(src=UAC, dst=UAS, tos=0x60)
        / UDP(sport=UAC_PORT, dport=UAS_PORT)
        / Raw(request("OPTIONS", 1))
    )
    frame: Packet = {
        "ethernet": lambda: Ether() / ip,
        "vlan": lambda: Ether() / Dot1Q(vlan=7) / ip,
        "linux-cooked": lambda: CookedLinux(proto=0x0800) / ip,
        "raw-ip": lambda: ip,
        "bsd-loopback": lambda: Loopback(type=2) / ip,
    }[link]()
    frame.time = 5.0
    path = tmp_path / "link.pcap"
    wrpcap(str(path), [frame], linktype=101 if link == "raw-ip" else None)
    trace = read_pcap(path)
    assert [(p.method, p.src, p.dscp, p.time) for p in trace.sip] == [
        ("OPTIONS", f"{UAC}:{UAC_PORT}", 24, pytest.approx(5.0))
    ]


def test_tcp_capture_started_mid_message_picks_up_at_the_next_message(tmp_path: Path) -> None:
    first, second = request("OPTIONS", 1), request("OPTIONS", 2)
    stream = first + second
    segments = tcp_segments(stream, [40, len(first) + 20])[2:]  # no SYN, no first 40 bytes
    trace = read_pcap(write(tmp_path, segments))
    assert [p.raw for p in trace.sip] == [second]


def test_expected_none_refuses_any_retransmission(tmp_path: Path) -> None:
    match = MessageMatch(status=200, cseq_method="INVITE")
    once = read_pcap(write(tmp_path, call([0.1], ack_at=0.2)))
    assert retransmission_schedule(once, match, "none").ok
    twice = read_pcap(write(tmp_path, call([0.1, 0.6], ack_at=0.7)))
    check = retransmission_schedule(twice, match, "none")
    assert not check.ok and "1 more than the schedule allows" in check.message


def test_retransmissions_must_end_at_timer_h(tmp_path: Path) -> None:
    err = response(486, "Busy Here", "INVITE", 1)
    times = [0.0, 0.5, 1.5, 3.5, *[3.5 + 4.0 * k for k in range(1, 9)]]  # up to 35.5 s
    packets = [udp(0.0, request("INVITE", 1), to_uas=True)]
    packets += [udp(0.01 + t, err, to_uas=False) for t in times]
    trace = read_pcap(write(tmp_path, packets))
    check = retransmission_schedule(trace, MessageMatch(status=486))
    assert not check.ok and "retransmitted after 32.0 s" in check.message
    assert retransmission_schedule(trace, MessageMatch(status=486), timeout=40.0).ok


def test_rtp_flow_checks_ptime_and_ignores_other_calls_media(tmp_path: Path) -> None:
    packets = call([0.1], ack_at=0.11, bye_at=1.0)
    stranger = rtp(0.5, 1, 1, to_bridge=True, ssrc=0x5555)
    stranger[UDP].dport = 30000  # RTP of another call on the same host
    trace = read_pcap(write(tmp_path, [*packets, stranger]))
    assert len(trace.rtp) == len([p for p in packets if p[UDP].dport in (20000, 20002)]) + 1
    check = rtp_flow(trace, ptime_ms=20)
    assert check.ok, check.message
    slow = rtp_flow(trace, ptime_ms=30)
    assert not slow.ok and "every 20.0 ms (median) instead of 30 ms" in slow.message


def test_timer_names_rtp_wrappers_and_call_id_match(tmp_path: Path) -> None:
    trace = read_pcap(write(tmp_path, call([0.1, 0.6, 1.6], ack_at=1.7, bye_at=2.0)))
    ok = MessageMatch(status=200, cseq_method="INVITE", call_id=f"call-1@{UAC}")
    assert retransmission_schedule(trace, ok, "2xx").ok
    assert not retransmission_schedule(trace, ok, [0.2, 0.4]).ok  # explicit intervals
    with pytest.raises(ValueError, match="unknown retransmission schedule 'Q'"):
        retransmission_schedule(trace, ok, "Q")  # type: ignore[arg-type]
    other_call = MessageMatch(status=200, call_id="elsewhere")
    assert (
        "no message(status=200, call_id=elsewhere)"
        in retransmission_schedule(trace, other_call).message
    )
    assert run_check(trace, "rtp_after_ack", {"within": 0.1}).ok
    assert not run_check(trace, "rtp_after_ack", {"within": 0.01}).ok
    assert run_check(trace, "no_rtp_after_bye", {"after": 0.1}).ok

"""Live capture on loopback: tcpdump and the scapy fallback, and a SIPp call drawn as a ladder."""

from __future__ import annotations

import select
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from sipharness.capture import (
    Capture,
    CaptureError,
    MessageMatch,
    read_pcap,
    require_capture,
    retransmission_schedule,
    rtp_flow,
)
from sipharness.hostenv import free_port
from sipharness.report.ladder import entries_from_trace, render_svg, render_text

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("backend", ["tcpdump", "scapy"])
def test_each_datagram_is_captured_exactly_once(
    backend: str, tmp_path: Path, require_tool: Callable[[str], str]
) -> None:
    if backend == "tcpdump":
        require_tool("tcpdump")
    require_capture("tcpdump" if backend == "tcpdump" else "scapy")
    port = free_port()
    payloads = [f"OPTIONS sip:probe-{i}@127.0.0.1 SIP/2.0\r\n\r\n".encode() for i in range(20)]
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        rx.bind(("127.0.0.1", port))
        with Capture(
            bpf=f"udp port {port}",
            path=tmp_path / "c.pcap",
            backend="tcpdump" if backend == "tcpdump" else "scapy",
        ) as cap:
            for payload in payloads:
                tx.sendto(payload, ("127.0.0.1", port))
            for _ in payloads:
                rx.settimeout(2.0)
                rx.recv(2048)
    trace = read_pcap(cap.path)
    assert [p.raw for p in trace.sip] == payloads
    assert cap.stats.captured == len(payloads)
    if backend == "tcpdump":
        assert cap.stats.dropped_by_kernel == 0


def test_sipp_call_under_tcpdump_draws_the_ladder(
    tmp_path: Path, require_tool: Callable[[str], str]
) -> None:
    sipp = require_tool("sipp")
    require_tool("tcpdump")
    require_capture("tcpdump")
    uas_port, uac_port = free_port(), free_port()
    common = ["-i", "127.0.0.1", "-m", "1", "-nostdin", "-timeout", "15s", "-timeout_error"]
    uas = subprocess.Popen(
        [sipp, "-sn", "uas", "-p", str(uas_port), *common],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with Capture(
            bpf=f"udp port {uas_port} or udp port {uac_port}",
            path=tmp_path / "sipp.pcap",
            backend="tcpdump",
        ) as cap:
            uac = subprocess.run(
                [
                    sipp,
                    "-sn",
                    "uac",
                    f"127.0.0.1:{uas_port}",
                    "-p",
                    str(uac_port),
                    "-d",
                    "100",
                    *common,
                ],
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=30,
            )
            assert uac.returncode == 0, uac.stderr.decode(errors="replace")[-500:]
    finally:
        if uas.poll() is None:
            uas.kill()
            uas.wait()
    entries = entries_from_trace(read_pcap(cap.path))
    labels = [e.label for e in entries]
    want = [
        "INVITE (CSeq 1)",
        "180 Ringing (INVITE)",
        "200 OK (INVITE)",
        "ACK (CSeq 1)",
        "BYE (CSeq 2)",
        "200 OK (BYE)",
    ]
    assert [x for x in labels if not x.startswith("100 ")] == want
    uac_end, uas_end = f"127.0.0.1:{uac_port}", f"127.0.0.1:{uas_port}"
    assert [(e.src, e.dst) for e in entries if not e.label.startswith("100 ")] == [
        (uac_end, uas_end),
        (uas_end, uac_end),
        (uas_end, uac_end),
        (uac_end, uas_end),
        (uac_end, uas_end),
        (uas_end, uac_end),
    ]
    text = render_text(entries)
    positions = [text.index(label) for label in want[:4]]
    assert positions == sorted(positions)
    root = ET.fromstring(render_svg(entries))
    assert root.tag.endswith("svg")


def test_tcpdump_refusing_the_filter_is_reported(
    tmp_path: Path, require_tool: Callable[[str], str]
) -> None:
    require_tool("tcpdump")
    require_capture("tcpdump")
    with (
        pytest.raises(
            CaptureError, match=r"did not start listening: tcpdump: unknown port 'nonsense-port'"
        ),
        Capture(bpf="udp port nonsense-port", path=tmp_path / "x.pcap", backend="tcpdump"),
    ):
        pass


# A dial-in that withholds the ACK for 1 s so the 2xx retransmissions show on the wire.
WITHHOLD_ACK = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="withhold the ACK for 1 s">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:+14155551234@[local_ip]>;tag=[call_number]
To: <sip:[service]@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:caller@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv response="100" optional="true"/>
  <recv response="401" auth="true"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
From: <sip:+14155551234@[local_ip]>;tag=[call_number]
To: <sip:[service]@[remote_ip]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:+14155551234@[local_ip]>;tag=[call_number]
To: <sip:[service]@[remote_ip]>
Call-ID: [call_id]
CSeq: 2 INVITE
Contact: <sip:caller@[local_ip]:[local_port]>
[authentication]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <pause milliseconds="1000"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:+14155551234@[local_ip]>;tag=[call_number]
To: <sip:[service]@[remote_ip]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <pause milliseconds="500"/>
  <send retrans="500"><![CDATA[
BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:+14155551234@[local_ip]>;tag=[call_number]
To: <sip:[service]@[remote_ip]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 3 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"""

BRIDGE_CONFIG = """\
listen: {{host: 127.0.0.1, udp: {port}, tcp: null}}
auth:
  credentials: [{{username: trunk, password: capture-test-only}}]
rooms: [{{room_code: abc-defg-hij, room_id: r1, room_name: capture}}]
roster: {{port: null}}
media: {{mode: tone}}
timers: {{t1: 0.1, t2: 0.4}}
faults: {faults}
"""


def start_bridge(tmp_path: Path, port: int, faults: list[str]) -> subprocess.Popen[bytes]:
    """The mock bridge on ``port`` with fast timers (T1 100 ms, T2 400 ms), once READY."""
    config = tmp_path / "bridge.yaml"
    config.write_text(BRIDGE_CONFIG.format(port=port, faults=faults))
    bridge = subprocess.Popen(
        [sys.executable, "-m", "sipharness", "bridge", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert bridge.stdout is not None
    ready, _, _ = select.select([bridge.stdout], [], [], 20.0)
    line = bridge.stdout.readline() if ready else b""
    if not line.startswith(b"READY"):
        bridge.kill()
        bridge.wait()
        pytest.fail(f"the mock bridge did not start: {line!r}")
    return bridge


@pytest.mark.parametrize("faults", [[], ["no-2xx-retransmit"]], ids=["bridge", "no-2xx-retransmit"])
def test_packet_checks_against_the_mock_bridge(
    faults: list[str], tmp_path: Path, require_tool: Callable[[str], str]
) -> None:
    sipp = require_tool("sipp")
    require_tool("tcpdump")
    require_capture("tcpdump")
    bridge_port, sipp_port, media_port = free_port(), free_port(), free_port()
    scenario = tmp_path / "withhold_ack.xml"
    scenario.write_text(WITHHOLD_ACK)
    bridge = start_bridge(tmp_path, bridge_port, faults)
    try:
        with Capture(
            bpf=f"udp port {bridge_port} or udp port {sipp_port} or udp port {media_port}",
            path=tmp_path / "bridge.pcap",
            backend="tcpdump",
        ) as cap:
            uac = subprocess.run(
                [sipp, f"127.0.0.1:{bridge_port}", "-sf", str(scenario), "-s", "abc-defg-hij",
                 "-au", "trunk", "-ap", "capture-test-only",
                 "-auth_uri", f"abc-defg-hij@127.0.0.1:{bridge_port}",
                 "-i", "127.0.0.1", "-p", str(sipp_port), "-mp", str(media_port), "-rtp_echo",
                 "-m", "1", "-nostdin", "-timeout", "15s", "-timeout_error"],
                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30,
            )  # fmt: skip
            assert uac.returncode == 0, uac.stderr.decode(errors="replace")[-500:]
    finally:
        bridge.terminate()
        try:
            bridge.wait(10)
        except subprocess.TimeoutExpired:
            bridge.kill()
            bridge.wait()
    trace = read_pcap(cap.path)
    ok_match = MessageMatch(status=200, cseq_method="INVITE")
    check = retransmission_schedule(trace, ok_match, t1=0.1, t2=0.4, slack=0.05)
    if faults:
        assert not check.ok
        assert "expected retransmissions at [0.10, 0.30, 0.70" in check.message
        assert "the wire showed sends at [0.00] s" in check.message
    else:
        assert check.ok, check.message
        assert "3 retransmission(s)" in check.message or "4 retransmission(s)" in check.message
        flow = rtp_flow(trace, after_ack_within=1.0)
        assert flow.ok, flow.message

"""Ladder diagrams: text and SVG rendering, entries from a pcap, and ``sipharness ladder``."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from sipharness.cli import main
from sipharness.report.ladder import LadderEntry, render_svg, render_text

SVG = "{http://www.w3.org/2000/svg}"
UAC, BRIDGE, MEDIA = "10.0.0.1:5070", "10.0.0.2:5060", "10.0.0.3:5060"
SECRET_RESPONSE = "0123456789abcdef0123456789abcdef"
AUTH_INVITE = (
    "INVITE sip:room@10.0.0.2 SIP/2.0\r\nCSeq: 2 INVITE\r\n"
    f'Authorization: Digest username="u", response="{SECRET_RESPONSE}"\r\n\r\n'
).encode()


def entries() -> list[LadderEntry]:
    ok = b"SIP/2.0 200 OK\r\nCSeq: 2 INVITE\r\n\r\n"
    return [
        LadderEntry(10.0, UAC, BRIDGE, "INVITE (CSeq 1)", b"INVITE 1"),
        LadderEntry(10.001, BRIDGE, UAC, "401 Unauthorized (INVITE)", b"401"),
        LadderEntry(10.002, UAC, BRIDGE, "INVITE (CSeq 2)", AUTH_INVITE),
        LadderEntry(10.050, BRIDGE, UAC, "200 OK (INVITE)", ok),
        LadderEntry(10.550, BRIDGE, UAC, "200 OK (INVITE)", ok),
        LadderEntry(10.600, BRIDGE, MEDIA, "OPTIONS (CSeq 7)", b"OPTIONS"),
    ]


def test_text_ladder_has_columns_arrows_times_and_retransmissions() -> None:
    text = render_text(reversed(entries()))  # sorted by time whatever the input order
    lines = text.splitlines()
    head = lines[0]
    assert head.index(UAC) < head.index(BRIDGE) < head.index(MEDIA)
    rows = [line for line in lines if "(" in line and "|" in line]
    assert [r.split("|", 1)[0].strip() for r in rows] == [
        "0.0",
        "1.0",
        "2.0",
        "50.0",
        "550.0",
        "600.0",
    ]
    assert "-->" in rows[0].split("INVITE")[1] and "<-" in rows[1]
    assert "[retransmission]" in rows[4] and "retransmission" not in rows[3]
    # the OPTIONS goes from the second column to the third, leaving the first lifeline alone
    assert rows[5].split("|")[1].strip() == "" and rows[5].rstrip().endswith(">|")
    assert render_text([]) == "(no messages)\n"


def test_svg_is_xml_with_lifelines_arrows_and_redacted_tooltips() -> None:
    svg = render_svg(entries())
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    lines = root.findall(f".//{SVG}line")
    lifelines = [x for x in lines if x.get("stroke-dasharray") == "4 3"]
    assert len(lifelines) == 3
    groups = root.findall(f"{SVG}g")
    assert len(groups) == 6
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert "INVITE (CSeq 2)" in texts and "200 OK (INVITE) [retransmission]" in texts
    tooltip = groups[2].find(f"{SVG}title")
    assert tooltip is not None and tooltip.text is not None
    assert 'response="[REDACTED]"' in tooltip.text
    assert SECRET_RESPONSE not in svg


def write_call_pcap(path: Path) -> None:
    def sip(t: float, src: str, dst: str, text: str) -> Ether:
        pkt = (
            Ether()
            / IP(src=src, dst=dst)
            / UDP(
                sport=5070 if src == "127.0.0.1" else 5060,
                dport=5060 if src == "127.0.0.1" else 5070,
            )
        )
        pkt = pkt / Raw(text.encode())
        pkt.time = t
        return pkt

    common = (
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\n"
        "To: <sip:b@y>\r\nCall-ID: c1\r\n"
    )
    packets = [
        sip(
            1.0,
            "127.0.0.1",
            "127.0.0.2",
            f"INVITE sip:b@y SIP/2.0\r\n{common}CSeq: 1 INVITE\r\n"
            f'Authorization: Digest response="{SECRET_RESPONSE}"\r\nContent-Length: 0\r\n\r\n',
        ),
        sip(
            1.1,
            "127.0.0.2",
            "127.0.0.1",
            f"SIP/2.0 200 OK\r\n{common}CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        ),
        sip(
            1.2,
            "127.0.0.1",
            "127.0.0.2",
            f"ACK sip:b@y SIP/2.0\r\n{common}CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        ),
    ]
    wrpcap(str(path), packets)


def test_cli_ladder_prints_text_and_writes_svg(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pcap, svg = tmp_path / "call.pcap", tmp_path / "call.svg"
    write_call_pcap(pcap)
    assert main(["ladder", str(pcap), "--svg", str(svg), "--text"]) == 0
    out = capsys.readouterr().out
    order = [out.index(x) for x in ("INVITE (CSeq 1)", "200 OK (INVITE)", "ACK (CSeq 1)")]
    assert order == sorted(order)
    assert "127.0.0.1:5070" in out and "127.0.0.2:5060" in out
    body = svg.read_text()
    ET.fromstring(body)
    assert SECRET_RESPONSE not in body and SECRET_RESPONSE not in out


def test_cli_ladder_reports_missing_file_and_empty_capture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ladder", str(tmp_path / "nope.pcap")]) == 2
    empty = tmp_path / "empty.pcap"
    wrpcap(str(empty), [])
    assert main(["ladder", str(empty)]) == 1
    assert "no SIP messages" in capsys.readouterr().err

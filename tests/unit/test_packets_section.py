"""The ``packets:`` section: validation with file:line:field, checks on a trace built by hand,
and the capture lifecycle without capture privilege (skip with how to enable; CI fails)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from sipharness.capture import Trace
from sipharness.capture.analysis import RtpPacket, SipPacket
from sipharness.capture.assertions import MessageMatch
from sipharness.scenario import packets
from sipharness.scenario.executor import Target
from sipharness.scenario.loader import load_scenario
from sipharness.scenario.packets import (
    CallFacts,
    PacketCheckFailed,
    StepMessage,
    Timers,
    capture_for,
    evaluate,
)
from sipharness.scenario.plan import Plan, expand
from sipharness.scenario.profiles import TargetProfile
from sipharness.scenario.source import ScenarioError
from sipharness.sip.message import parse_message

BRIDGE = "127.0.0.1:5060"
CALLER = "127.0.0.1:40000"
CALL_ID = "call-1@test"

HEAD = """\
title: t
checks: [TXN-05]
steps:
  - id: invite
    send: {method: INVITE}
  - id: answer
    expect: {status: 200}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "x.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def load_plan(tmp_path: Path, packets_section: str) -> Plan:
    (plan,) = expand(load_scenario(write(tmp_path, HEAD + packets_section), "scenarios/x.yaml"))
    return plan


def problems(tmp_path: Path, packets_section: str) -> list[str]:
    with pytest.raises(ScenarioError) as failed:
        load_scenario(write(tmp_path, HEAD + packets_section), "scenarios/x.yaml")
    return str(failed.value).splitlines()


def test_each_check_setting_is_validated_with_file_line_and_field(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
packets:
  - retransmission_schedule: {of: answer, timer: H}
  - max_datagram: {at_least: 1300, form: target}
  - rport: false
  - dscp: {sip: XX}
  - rtp_flow: {within: soon}
  - tcpdump: {}
""")
    assert found == [
        'scenarios/x.yaml:9:50: packets[0].retransmission_schedule.timer: expected 2xx, G, E, '
        'A or none, got "H"',
        "scenarios/x.yaml:10:36: packets[1].max_datagram.form: unknown field (expected one of: "
        "at_least, at_most, from)",
        "scenarios/x.yaml:11:12: packets[2].rport: expected true, got false",
        "scenarios/x.yaml:12:17: packets[3].dscp.sip: expected a DSCP: 0-63, a PHB name like "
        'EF, AF41, CS3, or a list of them, got "XX"',
        "scenarios/x.yaml:13:24: packets[4].rtp_flow.within: expected a duration: milliseconds "
        'as an integer, or a text like "200ms", "1.5s", "T1", "64*T1", got "soon"',
        "scenarios/x.yaml:14:5: packets[5]: expected a packet check: one of "
        "retransmission_schedule, rport, max_datagram, fragmentation, dscp, rtp_after_ack, "
        'no_rtp_after_bye, rtp_flow, got "tcpdump"',
    ]


def test_a_check_must_name_a_step_that_exists_and_bounds_must_be_ordered(
        tmp_path: Path) -> None:
    found = problems(tmp_path, """\
packets:
  - retransmission_schedule: {of: anwser}
  - max_datagram: {at_least: 2000, at_most: 1000}
""")
    assert len(found) == 2
    assert found[0].startswith("scenarios/x.yaml:9:")
    assert "packets[0].retransmission_schedule.of: no earlier step has id 'anwser'" in found[0]
    assert "packets[1].max_datagram.at_most: must not be less than at_least" in found[1]


# -- checks on a hand-made trace -------------------------------------------------------------


def sip(time: float, src: str, dst: str, text: str, *, call_id: str = CALL_ID) -> SipPacket:
    raw = text.replace("CALLID", call_id).replace("\n", "\r\n").encode() + b"\r\n"
    return SipPacket(time, src, dst, "UDP", parse_message(raw), raw, len(raw), False, 0)


def ok_200(via: str = "SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK1;rport=40000;"
                      "received=127.0.0.1") -> str:
    return (f"SIP/2.0 200 OK\nVia: {via}\nFrom: <sip:a@x>;tag=1\nTo: <sip:r@x>;tag=2\n"
            "Call-ID: CALLID\nCSeq: 2 INVITE\nContent-Length: 0\n")


ACK = ("ACK sip:r@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK9;rport\n"
       "From: <sip:a@x>;tag=1\nTo: <sip:r@x>;tag=2\nCall-ID: CALLID\nCSeq: 2 ACK\n"
       "Content-Length: 0\n")
INVITE = ("INVITE sip:r@127.0.0.1 SIP/2.0\n"
          "Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK1;rport\n"
          "From: <sip:a@x>;tag=1\nTo: <sip:r@x>\nCall-ID: CALLID\nCSeq: 2 INVITE\n"
          "Content-Length: 0\n")


def facts() -> CallFacts:
    return CallFacts(call_ids={CALL_ID}, call_id=CALL_ID, target_sip=BRIDGE,
                     steps={"invite": StepMessage(CALL_ID, 2, "INVITE"),
                            "answer": StepMessage(CALL_ID, 2, "INVITE", 200)})


def trace_of(*items: SipPacket | RtpPacket) -> Trace:
    sips = [p for p in items if isinstance(p, SipPacket)]
    rtps = [p for p in items if isinstance(p, RtpPacket)]
    return Trace(sip=sips, rtp=rtps, start=0.0, end=max(p.time for p in items))


def test_the_2xx_schedule_is_checked_on_the_message_the_step_id_names(tmp_path: Path) -> None:
    plan = load_plan(tmp_path, "packets:\n  - retransmission_schedule: {of: answer}\n")
    on_time = [sip(t, BRIDGE, CALLER, ok_200()) for t in (0.0, 0.5, 1.5, 3.5, 7.5)]
    ack = sip(8.0, CALLER, BRIDGE, ACK)
    (good,) = evaluate(plan.scenario.packets, trace_of(*on_time, ack), facts())
    assert good.ok, good.check.message
    (sent_once,) = evaluate(plan.scenario.packets, trace_of(on_time[0], ack), facts())
    assert not sent_once.ok
    assert sent_once.check.message == (
        "200 OK (INVITE): expected retransmissions at [0.50, 1.50, 3.50, 7.50] s; "
        "the wire showed sends at [0.00] s; ACK (CSeq 2) at 8.00 s")


def test_t1_and_t2_come_from_the_target_when_the_check_does_not_set_them(
        tmp_path: Path) -> None:
    plan = load_plan(tmp_path, "packets:\n  - retransmission_schedule: {of: answer}\n")
    fast = [sip(t, BRIDGE, CALLER, ok_200()) for t in (0.0, 0.1, 0.3, 0.7, 1.1, 1.5)]
    trace = trace_of(*fast, sip(1.7, CALLER, BRIDGE, ACK))
    (result,) = evaluate(plan.scenario.packets, trace, facts(), Timers(0.1, 0.4))
    assert result.ok, result.check.message
    (rfc_defaults,) = evaluate(plan.scenario.packets, trace, facts())
    assert not rfc_defaults.ok


def test_other_calls_in_the_capture_are_ignored(tmp_path: Path) -> None:
    plan = load_plan(tmp_path, "packets:\n  - rport: true\n")
    no_received = ok_200("SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK1;rport=40000")
    other = [sip(0.0, CALLER, BRIDGE, INVITE, call_id="other@test"),
             sip(0.1, BRIDGE, CALLER, no_received, call_id="other@test")]
    ours = [sip(0.2, CALLER, BRIDGE, INVITE), sip(0.3, BRIDGE, CALLER, ok_200())]
    (result,) = evaluate(plan.scenario.packets, trace_of(*other, *ours), facts())
    assert result.ok, result.check.message
    assert result.check.message.startswith("1 response(s) to 1 rport request(s)")


def test_a_missing_received_parameter_is_reported_with_rfc_3581(tmp_path: Path) -> None:
    plan = load_plan(tmp_path, "packets:\n  - rport: true\n")
    no_received = ok_200("SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK1;rport=40000")
    trace = trace_of(sip(0.0, CALLER, BRIDGE, INVITE), sip(0.1, BRIDGE, CALLER, no_received))
    (result,) = evaluate(plan.scenario.packets, trace, facts())
    assert not result.ok
    assert "received=None" in result.check.message
    assert "RFC 3581 §4: the server MUST add received=" in result.check.message
    good = trace_of(sip(0.0, CALLER, BRIDGE, INVITE), sip(0.1, BRIDGE, CALLER, ok_200()))
    assert evaluate(plan.scenario.packets, good, facts())[0].ok


def test_sip_checks_on_a_tls_case_say_the_capture_cannot_see_sip(tmp_path: Path) -> None:
    plan = load_plan(tmp_path, "packets:\n  - rport: true\n")
    tls = facts()
    tls.transport = "tls"
    trace = trace_of(sip(0.0, CALLER, BRIDGE, INVITE), sip(0.1, BRIDGE, CALLER, ok_200()))
    (result,) = evaluate(plan.scenario.packets, trace, tls)
    assert not result.ok
    assert result.check.message.startswith("SIP over TLS is encrypted on the wire")


def test_dscp_is_checked_on_what_the_target_sent(tmp_path: Path) -> None:
    plan = load_plan(tmp_path, "packets:\n  - dscp: {sip: CS3}\n")
    invite = sip(0.0, CALLER, BRIDGE, INVITE)  # the harness's own packets do not count
    marked = SipPacket(**{**vars(sip(0.1, BRIDGE, CALLER, ok_200())), "dscp": 24})
    assert evaluate(plan.scenario.packets, trace_of(invite, marked), facts())[0].ok
    (unmarked,) = evaluate(plan.scenario.packets,
                           trace_of(invite, sip(0.1, BRIDGE, CALLER, ok_200())), facts())
    assert unmarked.check.message == (
        "dscp_sip: expected DSCP 24 on every SIP packet; the wire showed DSCP 0: 1")


def test_failure_text_names_file_line_check_and_the_packets(tmp_path: Path) -> None:
    plan = load_plan(tmp_path, "packets:\n  - rport: true\n")
    no_received = ok_200("SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK1;rport=40000")
    trace = trace_of(sip(0.0, CALLER, BRIDGE, INVITE), sip(0.1, BRIDGE, CALLER, no_received))
    failed = [r for r in evaluate(plan.scenario.packets, trace, facts()) if not r.ok]
    lines = str(PacketCheckFailed(plan, failed, 0.0)).splitlines()
    assert lines[0].startswith("scenarios/x.yaml:9 packets[0].rport: expected responses at "
                               "the source port with received/rport set; the wire showed ")
    assert lines[1].strip().startswith("+0.000 s 127.0.0.1:40000 -> 127.0.0.1:5060 UDP INVITE")
    assert lines[-1].startswith("checks: TXN-05 (")


# -- the capture lifecycle -------------------------------------------------------------------


def target() -> Target:
    profile = TargetProfile(name="generic-uas", description="", features=frozenset())
    return Target(host="127.0.0.1", port=5060, transport="udp", username="", password="",
                  room_code="r", profile=profile)


def no_privilege(backend: str = "auto") -> tuple[bool, str]:
    return False, "no privilege to capture as uid 1000: sudo setcap cap_net_raw,cap_net_admin=eip"


def test_without_capture_privilege_the_checks_skip_saying_how_to_enable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIPHARNESS_REQUIRE_TOOLS", raising=False)
    monkeypatch.setattr(packets, "capture_available", no_privilege)
    plan = load_plan(tmp_path, "packets:\n  - rport: true\n")
    with capture_for(plan, target(), "udp") as wire:
        pass  # entering does not stop the test: the scenario's steps still run
    with pytest.raises(pytest.skip.Exception, match=r"packets: checks skipped: .*setcap"):
        wire.check(None)  # type: ignore[arg-type]


def test_in_ci_missing_capture_privilege_fails_before_the_steps(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIPHARNESS_REQUIRE_TOOLS", "1")
    monkeypatch.setattr(packets, "capture_available", no_privilege)
    plan = load_plan(tmp_path, "packets:\n  - rport: true\n")
    with (pytest.raises(pytest.fail.Exception, match=r"SIPHARNESS_REQUIRE_TOOLS=1 and packet "
                                                     r"capture is unavailable: .*setcap"),
          capture_for(plan, target(), "udp")):
        pytest.fail("the steps ran")


def test_without_privilege_a_plan_without_packets_still_runs_in_ci(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIPHARNESS_REQUIRE_TOOLS", "1")
    monkeypatch.setattr(packets, "capture_available", no_privilege)
    plan = load_plan(tmp_path, "")
    with capture_for(plan, target(), "udp") as wire:
        pass
    assert wire.check(None) == []  # type: ignore[arg-type]


def test_a_loopback_target_is_captured_on_lo_and_a_remote_one_on_its_route() -> None:
    assert packets.capture_interface("127.0.0.1") == "lo"
    assert packets.capture_interface("::1") == "lo"
    remote = packets.capture_interface("192.0.2.1")  # TEST-NET-1: only the route is looked up
    assert remote != "lo"
    assert remote == "any" or Path(f"/sys/class/net/{remote}").exists()


def test_the_capture_filter_compiles_and_keeps_ip_fragments(
        tmp_path: Path, require_tool: Callable[[str], str]) -> None:
    tcpdump = require_tool("tcpdump")
    from scapy.utils import PcapWriter

    empty = tmp_path / "empty.pcap"
    writer = PcapWriter(str(empty), linktype=1)
    writer.write_header(None)
    writer.close()
    bpf = packets.capture_filter("127.0.0.1", [5060], (20000, 29999))
    done = subprocess.run([tcpdump, "-r", str(empty), "-d", bpf], capture_output=True,
                          text=True, timeout=10, check=False)
    assert done.returncode == 0, done.stderr
    assert "ip[6:2] & 0x1fff != 0" in bpf  # later fragments carry no UDP port


@pytest.mark.parametrize(
    ("match", "transport", "timer"),
    [
        (MessageMatch(status=200, cseq_method="INVITE"), "udp", "2xx"),
        (MessageMatch(status=401, cseq_method="INVITE"), "udp", "G"),
        (MessageMatch(status=200, cseq_method="BYE"), "udp", "none"),
        (MessageMatch(method="INVITE"), "udp", "A"),
        (MessageMatch(method="BYE"), "udp", "E"),
        (MessageMatch(status=401, cseq_method="INVITE"), "tcp", "none"),
    ],
)
def test_default_retransmission_timer_follows_rfc_3261_section_17(
    match: MessageMatch, transport: str, timer: str
) -> None:
    assert packets.default_timer(match, transport) == timer

"""Packet scenarios against the mock bridge: the wire checks pass on a conforming bridge and,
with a fault, fail saying what the wire showed.

The mock runs with T1 = 100 ms and T2 = 400 ms so retransmission schedules (with the T2 cap)
fit in about two seconds; the checks take T1/T2 from the target profile.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sipharness.bridge.process import MockBridge
from sipharness.capture import read_pcap, require_capture, sip_label
from sipharness.scenario.executor import ExpectationFailed, Target, execute
from sipharness.scenario.loader import load_scenario
from sipharness.scenario.packets import PacketCheckFailed, PacketResult, capture_for
from sipharness.scenario.plan import Plan, expand
from sipharness.scenario.profiles import TargetProfile

ROOT = Path(__file__).resolve().parents[2]
FAST_TIMERS = {"timers": {"t1": 0.1, "t2": 0.4, "answer_delay": 0.1}}
pytestmark = [pytest.mark.integration]

HEAD = """\
title: t
checks: [TXN-05]
transport: udp
"""
CALL_2XX_WITHHELD = """\
steps:
  - send: {method: INVITE}
  - expect: {status: 401, within: 2s}
  - answer_challenge: correct
  - ack: {withhold: true}
  - id: answer
    expect: {status: 200, within: 5s}
  - pause: 1700ms
  - ack
  - bye
  - expect: {status: 200, within: 2s}
packets:
  - retransmission_schedule: {of: answer}
"""


def profile(**bridge: object) -> TargetProfile:
    return TargetProfile(name="mock-fast", description="", features=frozenset({"auth_401"}),
                         bridge={**FAST_TIMERS, **bridge})


def write_fast_profile(folder: Path) -> Path:
    """A target profile file for the plugin: the mock bridge with the fast timers."""
    path = folder / "fast.yaml"
    path.write_text("name: mock-fast\ndescription: fast timers\nfeatures: [auth_401]\n"
                    "bridge:\n  timers: {t1: 0.1, t2: 0.4, answer_delay: 0.1}\n",
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def capture_backend() -> str:
    return require_capture()


def start_bridge(faults: list[str], **settings: object) -> tuple[MockBridge, Target]:
    prof = profile(**settings)
    bridge = MockBridge(faults=faults, overrides=dict(prof.bridge))
    bridge.__enter__()
    target = Target(host=bridge.sip_host, port=bridge.sip_port, transport="udp",
                    username=bridge.username, password=bridge.password,
                    room_code=bridge.room_code, profile=prof)
    return bridge, target


@pytest.fixture(scope="module")
def mock_target(capture_backend: str) -> Iterator[Target]:
    bridge, target = start_bridge([])
    try:
        yield target
    finally:
        bridge.__exit__(None, None, None)


@pytest.fixture(scope="module")
def no_2xx_retransmit_target(capture_backend: str) -> Iterator[Target]:
    bridge, target = start_bridge(["no-2xx-retransmit"])
    try:
        yield target
    finally:
        bridge.__exit__(None, None, None)


def run_scenario(tmp_path: Path, text: str, target: Target) -> list[PacketResult]:
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    (plan,) = expand(load_scenario(path, display="scenarios/packets/x.yaml"))
    with capture_for(plan, target, plan.transport) as wire:
        run = execute(plan, target)
    return wire.check(run)


def test_2xx_retransmissions_follow_t1_doubling_capped_at_t2(
        tmp_path: Path, mock_target: Target) -> None:
    (result,) = run_scenario(tmp_path, HEAD + CALL_2XX_WITHHELD, mock_target)
    assert result.ok
    # 0.1, 0.2, 0.4, then capped: 0.4, 0.4 (doubling would wait 0.8 s) before the ACK at 1.7 s
    assert "5 retransmission(s) on schedule" in result.check.message


def test_no_2xx_retransmission_fails_naming_what_the_wire_showed(
        tmp_path: Path, no_2xx_retransmit_target: Target) -> None:
    with pytest.raises(PacketCheckFailed) as failed:
        run_scenario(tmp_path, HEAD + CALL_2XX_WITHHELD, no_2xx_retransmit_target)
    text = str(failed.value)
    first = text.splitlines()[0]
    assert first.startswith("scenarios/packets/x.yaml:16 packets[0].retransmission_schedule: ")
    assert "200 OK (INVITE): expected retransmissions at [0.10, 0.30, 0.70, 1.10, 1.50] s" in first
    assert "the wire showed sends at [0.00] s" in first
    assert "ACK (CSeq 2) at 1.7" in first
    assert "checks: TXN-05" in text


def test_a_retransmission_schedule_the_bridge_does_not_keep_fails(
        tmp_path: Path, mock_target: Target) -> None:
    # Claiming T1 = 300 ms for a bridge that uses 100 ms: the first interval is off.
    text = HEAD + CALL_2XX_WITHHELD.replace("{of: answer}", "{of: answer, t1: 300ms}")
    with pytest.raises(PacketCheckFailed, match=r"#1 after 0\.1\d s instead of 0\.30 s"):
        run_scenario(tmp_path, text, mock_target)


def test_401_is_retransmitted_on_timer_g_and_stops_at_the_ack(
        tmp_path: Path, mock_target: Target) -> None:
    text = HEAD + textwrap.dedent("""\
        steps:
          - send: {method: INVITE}
          - ack: {withhold: true}
          - id: challenge
            expect: {status: 401, within: 2s}
          - pause: 900ms
          - ack
          - expect_silence: 1s
        packets:
          - retransmission_schedule: {of: challenge, status: 401, timer: G}
        """)
    (result,) = run_scenario(tmp_path, text, mock_target)
    assert result.ok, result.check.message
    # copies at 0.1, 0.3, 0.7 s; the ACK at 0.9 s stops the one due at 1.1 s
    assert "3 retransmission(s) on schedule" in result.check.message


def test_large_invite_is_one_datagram_over_1300_bytes(tmp_path: Path, mock_target: Target) -> None:
    text = HEAD + textwrap.dedent("""\
        steps:
          - send:
              method: INVITE
              headers:
                - [X-Padding, '${repeat("0123456789abcdef", 100)}']
          - expect: {status: 401, within: 2s}
        packets:
          - max_datagram: {at_least: 1300, from: harness}
          - max_datagram: {at_most: 1000, from: harness}
          - max_datagram: {at_most: 1000, from: target}
        """)
    with pytest.raises(PacketCheckFailed) as failed:
        run_scenario(tmp_path, text, mock_target)
    (wrong,) = failed.value.failed
    assert wrong.spec.index == 1
    message = wrong.check.message
    assert "expected at most 1000 bytes; the wire showed largest SIP datagram" in message
    assert "INVITE (CSeq 1)), unfragmented" in message


def test_responses_go_back_to_the_source_port_with_received_and_rport(
        tmp_path: Path, mock_target: Target) -> None:
    text = HEAD + textwrap.dedent("""\
        steps:
          - send:
              method: OPTIONS
              headers:
                - [Via, "SIP/2.0/UDP ${target.host}:9;branch=z9hG4bK${random.branch};rport"]
          - expect: {status: ["2xx", "4xx"], within: 2s}
        packets:
          - rport: true
        """)
    (result,) = run_scenario(tmp_path, text, mock_target)
    assert "1 response(s) to 1 rport request(s)" in result.check.message
    assert result.ok


def test_conformance_run_reports_packet_failures_by_file_and_line(
        tmp_path: Path, capture_backend: str) -> None:
    """Through pytest and the scenario plugin: the capture wraps the test, the failure names
    the scenario file and line of the ``packets:`` entry, and the pcap attached to Allure has
    its Authorization values rewritten."""
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    shutil.copy(ROOT / "sipharness" / "scenario" / "schema.json", scenarios / "schema.json")
    (scenarios / "withheld.yaml").write_text(HEAD + CALL_2XX_WITHHELD, encoding="utf-8")
    prof = write_fast_profile(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPHARNESS_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(scenarios), "-p", "no:cacheprovider", "-q",
         "--rootdir", str(tmp_path), "--target-profile", str(prof),
         "--bridge-fault", "no-2xx-retransmit", "--alluredir", str(tmp_path / "allure")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    assert "scenarios/withheld.yaml:16 packets[0].retransmission_schedule: 200 OK (INVITE): " \
           "expected retransmissions at" in output, output[-3000:]
    assert "the wire showed sends at [0.00] s" in output
    (pcap,) = (tmp_path / "allure").glob("*-attachment.pcap")
    data = pcap.read_bytes()
    assert b'response="[REDACTED]' in data  # the authenticated INVITE's, rewritten
    assert re.search(rb'response="[0-9a-f]', data) is None


FRAGMENTED_INVITE = HEAD.replace("TXN-05", "TXN-10") + textwrap.dedent("""\
    steps:
      - send:
          method: INVITE
          headers:
            - [X-Padding, '${repeat("0123456789abcdef", 100)}']
      - expect: {status: 401, within: 2s}
    packets:
      - fragmentation: true
    """)


def test_fragmentation_check_fails_when_the_datagram_was_not_fragmented(
        tmp_path: Path, mock_target: Target) -> None:
    # Loopback's MTU is 64 kB: a 2 kB INVITE goes out in one piece.
    with pytest.raises(PacketCheckFailed, match=r"packets\[0\]\.fragmentation: expected it to be "
                                                r"IP-fragmented; the wire showed largest SIP "
                                                r"datagram \d+ bytes \(INVITE \(CSeq 1\)\), "
                                                r"unfragmented"):
        run_scenario(tmp_path, FRAGMENTED_INVITE, mock_target)


def test_a_fragmented_invite_is_seen_as_fragmented_on_a_1280_byte_mtu(
        tmp_path: Path, capture_backend: str, require_tool: Callable[[str], str]) -> None:
    """In a network namespace of its own whose loopback has a 1280-byte MTU, the same large
    INVITE leaves in IP fragments, the bridge reassembles and answers it, and the check
    (through the pytest plugin, capture filter included) sees the fragments."""
    unshare = require_tool("unshare")
    require_tool("ip")
    if subprocess.run([unshare, "--net", "true"], capture_output=True, check=False).returncode:
        pytest.skip("cannot create a network namespace here (needs CAP_SYS_ADMIN)")
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    shutil.copy(ROOT / "sipharness" / "scenario" / "schema.json", scenarios / "schema.json")
    (scenarios / "fragmented.yaml").write_text(FRAGMENTED_INVITE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPHARNESS_")}
    pytest_run = (f"{sys.executable} -m pytest {scenarios} -p no:cacheprovider -q "
                  f"--rootdir {tmp_path} --target-profile {write_fast_profile(tmp_path)}")
    done = subprocess.run([unshare, "--net", "--", "sh", "-c",
                           f"ip link set lo mtu 1280 up && {pytest_run}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "1 passed" in done.stdout


RTP_CALL = HEAD.replace("TXN-05", "SDP-07") + textwrap.dedent("""\
    steps:
      - send: {method: INVITE, sdp: {codecs: [PCMU], ptime: 20}}
      - expect: {status: 401, within: 2s}
      - answer_challenge: correct
      - expect: {status: 200, within: 5s}
      - ack
      - media: {send_rtp: {duration: 1s}}
      - bye
      - expect: {status: 200, within: 2s}
    packets:
      - rtp_flow: {within: 1s, after_bye: 100ms, ptime: 20}
    """)


@pytest.fixture(scope="module")
def silent_media_target(capture_backend: str) -> Iterator[Target]:
    bridge, target = start_bridge([], media={"mode": "none"})
    try:
        yield target
    finally:
        bridge.__exit__(None, None, None)


def test_rtp_flows_both_ways_continuously_and_stops_at_the_bye(
        tmp_path: Path, mock_target: Target) -> None:
    (result,) = run_scenario(tmp_path, RTP_CALL, mock_target)
    assert result.ok, result.check.message
    assert "to caller: " in result.check.message and "to bridge: " in result.check.message


def test_rtp_flow_fails_when_the_bridge_sends_no_rtp(
        tmp_path: Path, silent_media_target: Target) -> None:
    with pytest.raises(PacketCheckFailed) as failed:
        run_scenario(tmp_path, RTP_CALL, silent_media_target)
    first = str(failed.value).splitlines()[0]
    # media mode none answers m=audio 9: nothing comes back, nothing goes to the RTP range
    assert first.startswith("scenarios/packets/x.yaml:14 packets[0].rtp_flow: no RTP to caller;")
    assert first.endswith("the wire showed no RTP")


# -- every test is captured (not only those with packets:) -----------------------------------

PLAIN_CALL = HEAD.replace("TXN-05", "AUTH-01") + textwrap.dedent("""\
    steps:
      - send: {method: INVITE}
      - expect: {status: 401, within: 2s}
      - answer_challenge: correct
      - expect: {status: 200, within: 5s}
      - ack
      - bye
      - expect: {status: 200, within: 2s}
    """)
DIGEST_VALUE = re.compile(rb'(?i)\b(response|cnonce)\s*=\s*"?(?!\[REDACTED\])[0-9a-z+/=]{8,}')


def test_a_scenario_without_packets_gets_its_redacted_pcap_and_ladder_attached(
        tmp_path: Path, capture_backend: str) -> None:
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    shutil.copy(ROOT / "sipharness" / "scenario" / "schema.json", scenarios / "schema.json")
    (scenarios / "plain.yaml").write_text(PLAIN_CALL, encoding="utf-8")
    password = "Wire-secret-77x"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPHARNESS_")}
    env["SIPHARNESS_PASSWORD"] = password
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(scenarios), "-p", "no:cacheprovider", "-q",
         "--rootdir", str(tmp_path), "--target-profile", str(write_fast_profile(tmp_path)),
         "--sip-username", "sipharness", "--alluredir", str(tmp_path / "allure")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    (pcap,) = (tmp_path / "allure").glob("*-attachment.pcap")
    data = pcap.read_bytes()
    assert data.count(b"INVITE sip:") >= 2 and b"SIP/2.0 200 OK" in data and b"BYE sip:" in data
    assert b'response="[REDACTED]' in data  # the authenticated INVITE and BYE, rewritten
    assert DIGEST_VALUE.search(data) is None
    assert password.encode() not in data
    (result,) = (tmp_path / "allure").glob("*-result.json")
    names = re.findall(r'"name": "(capture[^"]*)"', result.read_text(encoding="utf-8"))
    assert sorted(names) == ["capture ladder", "capture ladder (text)", "capture.pcap"]


@pytest.fixture
def attached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Path]:
    """Copies of the pcaps the capture attaches (Allure records nothing outside its plugin)."""
    copies: list[Path] = []

    def keep(path: str | Path, name: str = "capture") -> None:
        copies.append(tmp_path / f"attached-{len(copies)}.pcap")
        shutil.copy(path, copies[-1])

    monkeypatch.setattr("sipharness.scenario.packets.attach_capture", keep)
    return copies


def plain_plan(tmp_path: Path, text: str = PLAIN_CALL) -> Plan:
    path = tmp_path / "plain.yaml"
    path.write_text(text, encoding="utf-8")
    (plan,) = expand(load_scenario(path, display="scenarios/x/plain.yaml"))
    return plan


def send_stray_options(target: Target) -> None:
    """An OPTIONS of another caller to the same bridge, answered while the test runs."""
    call_id = "stray-neighbour-call"
    request = (f"OPTIONS sip:{target.host}:{target.port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bK-stray\r\n"
               f"From: <sip:stray@127.0.0.1>;tag=stray\r\nTo: <sip:{target.host}>\r\n"
               f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
               f"Content-Length: 0\r\n\r\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2.0)
        sock.sendto(request.encode(), (target.host, target.port))
        assert call_id.encode() in sock.recv(65535)


def test_the_attached_pcap_holds_only_the_tests_own_calls(
        tmp_path: Path, mock_target: Target, attached: list[Path]) -> None:
    plan = plain_plan(tmp_path)
    with capture_for(plan, mock_target, "udp") as wire:
        send_stray_options(mock_target)
        run = execute(plan, mock_target)
    assert wire.path is not None and b"stray-neighbour-call" in wire.path.read_bytes()
    assert wire.check(run) == []
    (pcap,) = attached
    call_ids = {p.call_id for p in read_pcap(pcap).sip}
    assert run.call is not None and call_ids == {run.call.call_id}


def test_a_failing_scenario_still_gets_its_pcap_attached(
        tmp_path: Path, mock_target: Target, attached: list[Path]) -> None:
    plan = plain_plan(tmp_path, PLAIN_CALL.replace("status: 401", "status: 486"))
    with pytest.raises(ExpectationFailed), capture_for(plan, mock_target, "udp"):
        execute(plan, mock_target)
    (pcap,) = attached
    labels = [sip_label(p) for p in read_pcap(pcap).sip]
    assert labels[:2] == ["INVITE (CSeq 1)", "401 Unauthorized (INVITE)"], labels


@pytest.mark.parametrize("mode", ["never", "packets"])
def test_capture_can_be_turned_off_for_scenarios_without_packets(
        tmp_path: Path, mock_target: Target, attached: list[Path], mode: str) -> None:
    plan = plain_plan(tmp_path)
    with capture_for(plan, mock_target, "udp", mode) as wire:
        run = execute(plan, mock_target)
    assert wire.path is None
    assert wire.check(run) == []
    assert attached == []


def test_without_capture_privilege_a_scenario_without_packets_runs_and_says_why(
        tmp_path: Path, mock_target: Target, attached: list[Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    notes: list[tuple[str, str]] = []
    monkeypatch.setattr("sipharness.scenario.packets.capture_available",
                        lambda: (False, "no privilege to capture as uid 1000"))
    monkeypatch.setattr("sipharness.report.allure.attach_text",
                        lambda name, text: notes.append((name, text)))
    monkeypatch.setenv("SIPHARNESS_REQUIRE_TOOLS", "1")  # only packets: checks need capture
    plan = plain_plan(tmp_path)
    with capture_for(plan, mock_target, "udp") as wire:
        run = execute(plan, mock_target)
    assert wire.check(run) == []
    assert ("capture", "not captured: no privilege to capture as uid 1000") in notes
    assert attached == []


def test_an_unknown_capture_mode_is_a_usage_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPHARNESS_")}
    env["SIPHARNESS_CAPTURE"] = "sometimes"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "conformance", "-p", "no:cacheprovider", "-q",
         "--collect-only"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "--sip-capture: expected always, packets or never, got 'sometimes'" in done.stderr


def test_with_capture_off_a_scenario_with_packets_is_skipped_saying_so(
        tmp_path: Path, mock_target: Target, attached: list[Path]) -> None:
    plan = plain_plan(tmp_path, PLAIN_CALL + "packets:\n  - rport: true\n")
    with capture_for(plan, mock_target, "udp", "never") as wire:
        run = execute(plan, mock_target)
    with pytest.raises(pytest.skip.Exception, match=r"capture is off \(--sip-capture never\)"):
        wire.check(run)
    assert attached == []

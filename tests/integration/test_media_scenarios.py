"""The ``media:`` scenarios against the mock bridge (echo, tone, media off) and SIPp's RTP echo.

Each test runs a scenario file from scenarios/media/ through the conformance executor on a
real call, and reads the RTP numbers the media steps measured.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sipharness.agent import Agent, Credentials, room_uri
from sipharness.agent.media import CallMedia
from sipharness.bridge.process import MockBridge
from sipharness.hostenv import free_port
from sipharness.media.engine import MediaReport
from sipharness.scenario import model as m
from sipharness.scenario.executor import ExpectationFailed, ScenarioRun, Target, execute
from sipharness.scenario.loader import load_scenario
from sipharness.scenario.media_steps import media_reports, offer_port
from sipharness.scenario.plan import Plan, expand
from sipharness.scenario.profiles import load_profile

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
MEDIA = ROOT / "scenarios" / "media"
SIPP_UAS = ROOT / "fixtures" / "sipp" / "uas_auth.xml"
USER, PASSWORD = "alice", "s3cret-Pa55"
LOOPBACK_LATENCY_MS = 5.0  # "a few milliseconds": an average echo round trip on loopback


def plan_of(path: Path) -> Plan:
    plans = expand(load_scenario(path, display=path.relative_to(ROOT).as_posix()
                                 if path.is_relative_to(ROOT) else str(path)))  # fmt: skip
    assert len(plans) == 1
    return plans[0]


def media_line(plan: Plan, number: int = 0) -> tuple[int, int]:
    """(file line, 1-based step number) of the plan's ``number``-th media step."""
    step = [s for s in plan.steps if isinstance(s, m.Media)][number]
    return step.line, step.index + 1


def bridge_target(bridge: MockBridge) -> Target:
    return Target(host=bridge.sip_host, port=bridge.sip_port, transport="udp",
                  username=bridge.username, password=bridge.password,
                  room_code=bridge.room_code, profile=load_profile("mock"))  # fmt: skip


@pytest.fixture(scope="module")
def echo_bridge() -> Iterator[Target]:
    with MockBridge(overrides={"media": {"mode": "echo"}}) as bridge:
        yield bridge_target(bridge)


def assert_clean_echo(report: MediaReport, seconds: float) -> None:
    """What a 5 s call through an echo on loopback must show: nothing lost, a few ms."""
    got = report.received
    assert report.duration_s >= seconds, report.summary()
    assert got.lost == 0 and got.loss_ratio == 0.0, report.summary()
    assert got.received >= report.sent.packets - 3, report.summary()  # the last in flight
    assert report.echoed_packets >= got.received - 1, report.summary()
    assert report.latency_avg_ms is not None, report.summary()
    assert report.latency_avg_ms < LOOPBACK_LATENCY_MS, report.summary()
    assert got.first_packet_ms is not None and got.first_packet_ms < 1000  # SDP-07
    assert got.ssrc_changes == got.sequence_jumps == got.timestamp_jumps == 0
    assert got.dtmf_digits == "123#"
    assert report.mos is not None and report.mos > 4.3, report.summary()


def test_a_five_second_call_through_the_echo_loses_nothing_at_loopback_latency(
    echo_bridge: Target,
) -> None:
    run = execute(plan_of(MEDIA / "rtp_echo.yaml"), echo_bridge)
    (report,) = media_reports(run)
    assert_clean_echo(report, 5.0)
    assert report.sent.dtmf_packets == 4 * 7  # 100 ms digits at 20 ms: 4 updates + 3 ends


def test_rtp_stays_one_stream_across_a_reinvite(echo_bridge: Target) -> None:
    run = execute(plan_of(MEDIA / "rtp_both_ways.yaml"), echo_bridge)
    before, after = media_reports(run)
    assert after.sent.packets > before.sent.packets  # one session, counting on
    assert after.local == before.local
    assert after.received.ssrc_changes == after.received.sequence_jumps == 0
    assert after.received.timestamp_jumps == 0
    assert after.received.lost == 0, after.summary()


def test_dtmf_goes_out_on_the_offered_telephone_event_type(echo_bridge: Target) -> None:
    run = execute(plan_of(MEDIA / "dtmf.yaml"), echo_bridge)
    (report,) = media_reports(run)
    assert report.sent.dtmf_packets == 4 * 7
    assert report.received.dtmf_digits == "159#"  # the echo proves payload type 96 was used


def test_with_the_bridge_media_off_the_scenario_fails_saying_no_rtp_arrived() -> None:
    plan = plan_of(MEDIA / "rtp_echo.yaml")
    line, number = media_line(plan)
    with (MockBridge(overrides={"media": {"mode": "none"}}) as bridge,
          pytest.raises(ExpectationFailed) as failed):
        execute(plan, bridge_target(bridge))
    text = str(failed.value)
    head = text.splitlines()[0]
    assert head.startswith(f"scenarios/media/rtp_echo.yaml:{line} step {number} (media): "
                           "expected RTP back within 1 s, saw nothing: no RTP arrived on "
                           "127.0.0.1:")  # fmt: skip
    assert re.search(r" from 127\.0\.0\.1:\d+ in \d+\.\d s \(\d+ RTP packets sent\)$", head), head


def test_a_bridge_playing_a_tone_passes_the_flow_check_but_not_the_echo_check(
    tmp_path: Path,
) -> None:
    echo_check = tmp_path / "echo_check.yaml"
    echo_check.write_text(
        (MEDIA / "rtp_echo.yaml").read_text()
        .replace("send_rtp: {duration: 5s}", "send_rtp: {duration: 1s}")
        .replace('dtmf: {digits: "123#", echoed: true}', 'dtmf: {digits: "1"}')
    )  # fmt: skip
    with MockBridge(overrides={"media": {"mode": "tone"}}) as bridge:
        target = bridge_target(bridge)
        run = execute(plan_of(MEDIA / "rtp_both_ways.yaml"), target)
        with pytest.raises(ExpectationFailed) as failed:
            execute(plan_of(echo_check), target)
    before, after = media_reports(run)
    assert after.received.ssrc_changes == 0 and after.received.received > before.received.received
    assert before.latency_avg_ms is None  # the tone is the bridge's own stream, not our echo
    assert re.search(r"expected an echo round trip of at most \d+ ms, "
                     r"saw no packet of ours came back", str(failed.value))  # fmt: skip


def test_a_port_reserved_for_the_offer_is_where_rtp_is_received(
    echo_bridge: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    offered: list[int] = []
    build_offer = ScenarioRun.offer

    def offer_seen(run: ScenarioRun, spec: m.SdpSpec | None,
                   default: bool) -> bytes | None:  # fmt: skip
        body = build_offer(run, spec, default)
        if body is not None and (port := re.search(rb"^m=audio (\d+) ", body, re.M)):
            offered.append(int(port.group(1)))
            assert offered[-1] == offer_port(run) != 9  # the reserved port, not the discard port
        return body

    monkeypatch.setattr(ScenarioRun, "offer", offer_seen)
    run = execute(plan_of(MEDIA / "dtmf.yaml"), echo_bridge)
    (report,) = media_reports(run)
    assert offered and report.local == ("127.0.0.1", offered[0])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", offered[0]))  # released after the last media step


@pytest.fixture
def sipp_rtp_echo(require_tool: Callable[[str], str], tmp_path: Path) -> Iterator[Target]:
    """SIPp's authenticating UAS (fixtures/sipp/uas_auth.xml) for one call, with -rtp_echo."""
    sipp = require_tool("sipp")
    port, media_port = free_port(), free_port()
    process = subprocess.Popen(
        [sipp, "-sf", str(SIPP_UAS), "-i", "127.0.0.1", "-p", str(port), "-t", "u1",
         "-mi", "127.0.0.1", "-mp", str(media_port), "-rtp_echo", "-m", "1",
         "-set", "user", USER, "-set", "pass", PASSWORD,
         "-timeout", "30", "-timeout_error", "-nostdin"],
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_bound(port)
        yield Target(host="127.0.0.1", port=port, transport="udp", username=USER,
                     password=PASSWORD, room_code="abc-defg-hij",
                     profile=load_profile("generic-uas"))  # fmt: skip
        assert process.wait(timeout=10) == 0, "SIPp did not see the call complete"
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=5)


def wait_bound(port: int, within: float = 5.0) -> None:
    """Wait until some process has bound UDP 127.0.0.1:port (binding it ourselves fails)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return
        time.sleep(0.02)
    raise RuntimeError(f"SIPp did not bind 127.0.0.1:{port} within {within} s")


@pytest.mark.sipp
def test_sipp_uas_with_rtp_echo_gives_the_same_numbers(sipp_rtp_echo: Target) -> None:
    run = execute(plan_of(MEDIA / "rtp_echo.yaml"), sipp_rtp_echo)
    (report,) = media_reports(run)
    assert_clean_echo(report, 5.0)


def call_with(tmp_path: Path, media: str, codecs: str = "[PCMU, PCMA, telephone-event]") -> Plan:
    """A scenario file in tmp_path: an answered call whose one media step is ``media``."""
    path = tmp_path / "call_with_media.yaml"
    path.write_text(f"""\
title: one media step
checks: [SDP-07]
steps:
  - send: {{method: INVITE, sdp: {{codecs: {codecs}}}}}
  - expect: {{status: 401}}
  - answer_challenge: correct
  - expect: {{status: 200, within: 10s}}
  - ack
  - media: {media}
  - bye
  - expect: {{status: 200, within: 2s}}
""")
    return plan_of(path)


def test_expect_no_rtp_holds_with_media_off_and_fails_on_an_echo(
    tmp_path: Path, echo_bridge: Target
) -> None:
    plan = call_with(tmp_path, "{expect_no_rtp: {during: 500ms}}")
    with MockBridge(overrides={"media": {"mode": "none"}}) as bridge:
        run = execute(plan, bridge_target(bridge))
    (quiet,) = media_reports(run)
    assert quiet.sent.packets > 0 and quiet.received.packets == 0
    with pytest.raises(ExpectationFailed, match=r"expected no RTP for 0\.5 s, saw \d+ RTP "
                                                r"packets on 127\.0\.0\.1:\d+"):  # fmt: skip
        execute(plan, echo_bridge)


def test_a_codec_the_answer_did_not_choose_fails_before_sending(
    tmp_path: Path, echo_bridge: Target
) -> None:
    plan = call_with(tmp_path, "{send_rtp: {duration: 5s, codec: PCMA}}", codecs="[PCMU]")
    with pytest.raises(ExpectationFailed,
                       match=r"expected RTP in PCMA, saw the answer chose PCMU \(payload type 0\)"):
        execute(plan, echo_bridge)


def test_call_media_holds_a_dialled_call_with_rtp_on_the_offered_port(echo_bridge: Target) -> None:
    """The load user's path: CallMedia's offer, agent.dial, attach, hold, stop."""
    with Agent("udp") as agent, CallMedia(agent.local_host) as media:
        call = agent.dial(room_uri(echo_bridge.room_code, echo_bridge.host, echo_bridge.port),
                          credentials=Credentials(echo_bridge.username, echo_bridge.password),
                          sdp_offer=media.offer())  # fmt: skip
        assert call.outcome.answered, call.outcome.failure
        session = media.attach(call)
        assert session is not None and session.local == (agent.local_host, media.port)
        assert not call.wait_ended(1.0)
        report = media.stop()
        agent.finish(call)
    assert report is not None and media.stop() is report
    assert report.received.received > 0 and report.received.lost == 0, report.summary()
    assert report.latency_avg_ms is not None and report.mos is not None and report.mos > 4.3
    assert call.outcome.ending == "completed"

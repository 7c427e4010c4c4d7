"""A ``send`` step with its own ``transport:`` inside a case of another transport, and
``${local.*}`` naming our address, run by the conformance executor against the mock bridge
(UDP and TCP on one port)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from sipharness.agent.record import MessageEntry
from sipharness.bridge.process import MockBridge
from sipharness.hostenv import free_port
from sipharness.scenario.executor import ExpectationFailed, ScenarioRun, Target, execute
from sipharness.scenario.loader import load_scenario
from sipharness.scenario.plan import Plan, expand
from sipharness.scenario.profiles import load_profile

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE_SCENARIO = ROOT / "scenarios" / "dialog" / "options_each_transport.yaml"

HEAD = """\
title: {title}
checks: [DLG-08]
transport: udp
steps:
"""

OPTIONS_BOTH_WAYS = """\
  - options
  - expect: {status: 200, within: 2s}
  - id: probe
    send: {method: OPTIONS, transport: tcp, headers: [[X-Port, "${target.port}"]]}
  - expect:
      status: 200
      within: 2s
      headers: {Via: {contains: "SIP/2.0/TCP ${local.sent_by}"}}
"""

AUTHENTICATED_INVITE = """\
  - send: {{method: INVITE{transport}}}
  - expect: {{status: 401, within: 2s}}
  - answer_challenge: correct
  - expect: {{status: 200, within: 5s}}
  - ack
"""

HANG_UP = """\
  - bye
  - expect: {status: 200, within: 2s}
"""

RAW_OPTIONS = """\
  - send:
      {transport}
      raw: |
        OPTIONS sip:${{room_code}}@${{target.host}}:${{target.port}} SIP/2.0
        Via: SIP/2.0/${{upper(target.transport)}} {via};branch=z9hG4bK${{random.branch}}
        From: <sip:trunk@${{local.host}}>;tag=${{random.tag}}
        To: <sip:${{room_code}}@${{target.host}}>
        Call-ID: ${{random.call}}@${{local.host}}
        CSeq: 1 OPTIONS
        Max-Forwards: 70
        Content-Length: 0
  - expect: {{status: 200, within: 1s}}
"""


@pytest.fixture(scope="module")
def bridge() -> Iterator[MockBridge]:
    with MockBridge() as running:
        yield running


def target_of(bridge: MockBridge) -> Target:
    return Target(host=bridge.sip_host, port=bridge.sip_port, transport="udp",
                  username=bridge.username, password=bridge.password,
                  room_code=bridge.room_code, profile=load_profile("mock"),
                  extra_ports={t: bridge.port_for(t) for t in bridge.transports})


def plan_of(tmp_path: Path, title: str, steps: str) -> Plan:
    path = tmp_path / "case.yaml"
    path.write_text(HEAD.format(title=title) + steps, encoding="utf-8")
    (plan,) = expand(load_scenario(path, display="case.yaml"))
    return plan


def our_address(run: ScenarioRun, transport: str) -> str:
    """The Via sent-by of the run's own endpoint for ``transport``."""
    endpoint = run.agents[transport].transport
    assert endpoint is not None
    return endpoint.sent_by


def entries(run: ScenarioRun) -> list[MessageEntry]:
    record = run.record()
    assert record is not None
    return record.entries


def sent_over(run: ScenarioRun, method: str) -> list[str]:
    """The transports (``UDP``, ``TCP``) each request of ``method`` went out over."""
    return [e.transport for e in entries(run) if e.direction == "sent" and e.method == method
            and e.status is None]


def test_an_options_over_tcp_in_a_udp_case_is_sent_and_answered_over_tcp(
        bridge: MockBridge, tmp_path: Path) -> None:
    run = execute(plan_of(tmp_path, "OPTIONS both ways", OPTIONS_BOTH_WAYS), target_of(bridge))
    assert sent_over(run, "OPTIONS") == ["UDP", "TCP"]
    answers = [e for e in entries(run) if e.received and e.status == 200]
    assert [e.transport for e in answers] == ["UDP", "TCP"]
    over_tcp = [e for e in entries(run) if e.transport == "TCP"]
    assert over_tcp and all(e.remote[1] == bridge.port_for("tcp") for e in over_tcp)
    assert all("over TCP" in e.note for e in over_tcp)
    # Its own endpoint: the TCP request names the TCP agent's address, not the UDP socket's.
    udp_address, tcp_address = our_address(run, "udp"), our_address(run, "tcp")
    assert tcp_address != udp_address
    probe = run.by_id["probe"].data
    assert f"Via: SIP/2.0/TCP {tcp_address};".encode() in probe
    assert f"X-Port: {bridge.port_for('tcp')}".encode() in probe
    assert run.calls["udp"].call_id != run.calls["tcp"].call_id


def test_an_options_over_tcp_during_a_udp_call_leaves_the_dialog_on_udp(
        bridge: MockBridge, tmp_path: Path) -> None:
    steps = AUTHENTICATED_INVITE.format(transport="") + OPTIONS_BOTH_WAYS + HANG_UP
    run = execute(plan_of(tmp_path, "OPTIONS over TCP mid-call", steps), target_of(bridge))
    assert sent_over(run, "INVITE") == ["UDP", "UDP"]
    assert sent_over(run, "OPTIONS") == ["UDP", "TCP"]
    assert sent_over(run, "BYE") == ["UDP"]
    assert run.call is run.calls["udp"]
    bye = next(e for e in entries(run) if e.method == "BYE" and e.direction == "sent")
    assert bye.message is not None and bye.message.call_id == run.calls["udp"].call_id


def test_an_invite_over_tcp_in_a_udp_case_is_a_call_over_tcp_from_challenge_to_bye(
        bridge: MockBridge, tmp_path: Path) -> None:
    steps = AUTHENTICATED_INVITE.format(transport=", transport: tcp") + HANG_UP
    run = execute(plan_of(tmp_path, "a call over TCP", steps), target_of(bridge))
    assert {e.transport for e in entries(run)} == {"TCP"}
    assert sent_over(run, "INVITE") == ["TCP", "TCP"]
    assert sent_over(run, "ACK") == ["TCP", "TCP"]  # the 401's, then the 200's
    assert sent_over(run, "BYE") == ["TCP"]
    assert run.call is run.calls["tcp"] and list(run.calls) == ["tcp"]
    bye_answer = [e for e in entries(run) if e.received and e.method == "BYE"]
    assert [(e.status, e.transport) for e in bye_answer] == [(200, "TCP")]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_raw_via_naming_local_sent_by_without_rport_is_answered(
        bridge: MockBridge, tmp_path: Path, transport: str) -> None:
    steps = RAW_OPTIONS.format(transport=f"transport: {transport}", via="${local.sent_by}")
    run = execute(plan_of(tmp_path, "a trunk's own Via", steps), target_of(bridge))
    ours = our_address(run, transport)
    (sent,) = run.sent
    assert f"Via: SIP/2.0/{transport.upper()} {ours};branch=".encode() in sent.data
    assert b";rport" not in sent.data
    assert sent.last_response is not None


def test_a_raw_via_naming_another_port_without_rport_gets_no_answer(
        bridge: MockBridge, tmp_path: Path) -> None:
    steps = RAW_OPTIONS.format(transport="transport: udp", via="${local.host}:9")
    with pytest.raises(ExpectationFailed, match="expected status 200 to OPTIONS within 1 s, "
                                                "saw no response"):
        execute(plan_of(tmp_path, "a Via that is not ours", steps), target_of(bridge))


@pytest.mark.parametrize(("changes", "reason"), [
    ({"profile": dataclasses.replace(load_profile("mock"), name="udp-only",
                                     features=frozenset({"auth_401"}))},
     "target profile 'udp-only' does not offer tcp"),
    ({"extra_ports": {"udp": 1}}, "the target listens on udp only"),
], ids=["profile", "listeners"])
def test_a_target_without_the_step_transport_skips_before_the_first_step(
        tmp_path: Path, changes: dict[str, Any], reason: str) -> None:
    silent = Target(host="127.0.0.1", port=free_port(), transport="udp", username="u",
                    password="p", room_code="r", profile=load_profile("mock"))
    target = dataclasses.replace(silent, **changes)
    plan = plan_of(tmp_path, "needs TCP", OPTIONS_BOTH_WAYS)
    # The first step would wait 2 s for an answer from a port nobody listens on.
    with pytest.raises(pytest.skip.Exception) as skipped:
        execute(plan, target)
    assert str(skipped.value) == f"steps[2].send (probe): transport tcp: {reason}"


def test_the_catalogue_scenario_passes_through_the_conformance_plugin(
        run_scenario_files: Callable[[Mapping[str, str]], tuple[int, str]]) -> None:
    status, out = run_scenario_files(
        {f"dialog/{CATALOGUE_SCENARIO.name}": CATALOGUE_SCENARIO.read_text(encoding="utf-8")})
    assert status == 0 and "1 passed" in out, out

"""The runner's pure parts: target profiles, skip reasons, failure text, report redaction."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from sipharness.agent.record import CallRecord, MessageEntry
from sipharness.report.allure import epics_of, feature_of, message_exchange, record_as_json
from sipharness.report.redact import forget_secrets, register_secret
from sipharness.scenario.executor import ExpectationFailed
from sipharness.scenario.loader import load_scenario
from sipharness.scenario.plan import expand
from sipharness.scenario.profiles import ProfileError, load_profile
from sipharness.scenario.pytest_plugin import inherent_wait, parse_hostport

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = """\
title: Wrong password
description: a wrong answer never gives 200
checks: [AUTH-07, EVT-03]
tags: [auth]
severity: critical
requires: [auth_401, webhooks]
steps:
  - send: {method: INVITE}
  - expect: {status: 401}
  - answer_challenge: {credentials: password}
  - note: "AUTH-07: a wrong password is refused"
    expect: {status: [401, 403], within: 2s}
  - expect_webhook: {type: peer.join.success, none_within: 2s}
"""


@pytest.fixture
def scenario(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "scenarios" / "auth" / "wrong.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(SCENARIO)
    return load_scenario(path, display="scenarios/auth/wrong.yaml")


def test_the_shipped_profiles_load() -> None:
    for name in ("mock", "100ms", "generic-uas"):
        assert load_profile(name).name == name


def test_a_profile_skips_what_its_target_does_not_offer(scenario) -> None:  # type: ignore[no-untyped-def]
    assert load_profile("mock").skip_reason(scenario) is None
    reason = load_profile("100ms").skip_reason(scenario)
    assert reason is not None and "does not offer webhooks" in reason
    generic = load_profile("generic-uas").skip_reason(replace(scenario, requires=("auth",)))
    assert generic is not None and "is not held to AUTH-07, EVT-03" in generic


def test_a_bad_profile_names_the_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nfeatures: [webhooks, telepathy]\n")
    with pytest.raises(ProfileError, match=r"bad\.yaml: features: unknown feature 'telepathy'"):
        load_profile(str(bad))
    with pytest.raises(ProfileError, match="no target profile 'nope'"):
        load_profile("nope")


def test_a_failed_expectation_reads_file_line_step_expected_seen_and_rule(scenario) -> None:  # type: ignore[no-untyped-def]
    plan = expand(scenario)[0]
    step = plan.steps[3]
    text = str(ExpectationFailed(plan, step, "status 401/403 to INVITE", "200 OK",
                                 "    SIP/2.0 200 OK"))
    assert text.splitlines()[0] == ("scenarios/auth/wrong.yaml:11 step 4 (expect 401/403): "
                                    "expected status 401/403 to INVITE, saw 200 OK")
    assert "rule: AUTH-07: a wrong password is refused" in text
    assert text.endswith("    SIP/2.0 200 OK")


def test_cases_with_longer_inherent_waits_sort_first(scenario) -> None:  # type: ignore[no-untyped-def]
    assert inherent_wait(expand(scenario)[0]) == pytest.approx(2.0)


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:5070", ("127.0.0.1", 5070)), ("[::1]:5080", ("::1", 5080)),
    ("bridge.example", ("bridge.example", 5060))])
def test_targets_are_host_and_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_hostport(text) == expected


def test_labels_come_from_the_checklist_and_the_folder() -> None:
    assert epics_of(["AUTH-07", "EVT-03", "AUTH-01"]) == ["Digest authentication",
                                                          "Events and webhooks"]
    assert feature_of("scenarios/auth/wrong.yaml") == "auth"


def test_the_message_exchange_and_record_hide_credentials() -> None:
    register_secret("hunter2-secret")
    try:
        invite = (b"INVITE sip:room@127.0.0.1 SIP/2.0\r\n"
                  b"Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\n"
                  b'Authorization: Digest username="u", realm="r", nonce="n", uri="sip:room@h",'
                  b' response="0123456789abcdef0123456789abcdef", cnonce="c0ffee00"\r\n'
                  b"X-Note: hunter2-secret\r\nContent-Length: 0\r\n\r\n")
        record = CallRecord("call-1", "sip:room@127.0.0.1", "UDP")
        record.entries.append(MessageEntry("sent", 1.0, 1.0, ("127.0.0.1", 5062),
                                           ("127.0.0.1", 5060), "UDP", invite))
        for text in (message_exchange(record), str(record_as_json(record))):
            assert "0123456789abcdef" not in text
            assert "c0ffee00" not in text
            assert "hunter2-secret" not in text
            assert "[REDACTED]" in text
    finally:
        forget_secrets()

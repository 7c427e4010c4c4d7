"""Good scenario files load into the model the runners execute."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipharness.scenario import load_scenario
from sipharness.scenario import model as m
from sipharness.scenario.checklist import CHECKS
from sipharness.scenario.variables import Bindings

REPO = Path(__file__).resolve().parents[2]
# Fixed copies of the format's examples: the catalogue in scenarios/ may change freely.
SAMPLES = Path(__file__).parent / "scenario_examples"
EXAMPLES = sorted((REPO / "scenarios").rglob("*.yaml"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def bindings() -> Bindings:
    return Bindings(
        target_host="127.0.0.1",
        target_port=5060,
        transport="udp",
        room_code="abc-defg-hij",
        username="trunk",
        password="s3cret",
    )


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_scenario_loads(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.steps
    assert all(cid in CHECKS for cid in scenario.checks)
    assert [s.index for s in scenario.steps] == list(range(len(scenario.steps)))


def test_answered_call_example_has_the_model_the_executor_needs() -> None:
    s = load_scenario(SAMPLES / "invite/answered_call.yaml")
    assert s.severity == "blocker"
    assert s.requires == ("auth_401", "webhooks", "roster")
    assert s.load == m.LoadSettings(weight=5.0, think_time=2.0)
    invite = s.steps[0]
    assert isinstance(invite, m.Send) and invite.id == "invite" and invite.method == "INVITE"
    assert invite.sdp == m.SdpOffer(media=(m.SdpMedia(codecs=("PCMU", "PCMA", "telephone-event")),))
    first = s.steps[1]
    assert isinstance(first, m.Expect)
    assert first.statuses == (100,) and first.within == pytest.approx(0.2)
    assert first.to_tag == m.ToTagRule("absent")
    assert not first.skips_provisionals
    assert isinstance(s.steps[6], m.Ack) and not s.steps[6].withhold
    bye_ok = s.steps[-3]
    assert isinstance(bye_ok, m.Expect) and bye_ok.within == pytest.approx(0.5)
    assert [p.kind for p in s.packets] == ["rtp_after_ack", "no_rtp_after_bye"]
    assert s.source_lines[invite.line - 1].strip() == "- id: invite"


def test_steps_keep_their_source_line(tmp_path: Path) -> None:
    s = load_scenario(
        write(
            tmp_path,
            """\
title: t
checks: [DLG-08]
steps:
  - options

  - expect:
      status: 200
""",
        )
    )
    assert [step.line for step in s.steps] == [4, 6]
    assert s.steps[1].label == "steps[1].expect"


def test_headers_keep_case_order_and_raw_lines(tmp_path: Path) -> None:
    s = load_scenario(
        write(
            tmp_path,
            """\
title: t
checks: [HDR-05]
steps:
  - send:
      method: INVITE
      headers:
        - [x-100MS-display-NAME, "A"]
        - "l:   0"
        - [X-Dup, "1"]
        - [X-Dup, "2"]
""",
        )
    )
    send = s.steps[0]
    assert isinstance(send, m.Send)
    b = bindings()
    rendered = [(h.name.render(b) if h.name else None, h.value.render(b)) for h in send.headers]
    assert rendered == [
        ("x-100MS-display-NAME", "A"),
        (None, "l:   0"),
        ("X-Dup", "1"),
        ("X-Dup", "2"),
    ]


def test_expect_rules_are_modelled(tmp_path: Path) -> None:
    s = load_scenario(
        write(
            tmp_path,
            """\
title: t
checks: [DLG-07]
steps:
  - {id: inv, send: {method: INVITE, sdp: false}}
  - id: first
    expect:
      status: [500, 5xx]
      of: inv
      headers:
        Retry-After: present
        Warning: absent
        Allow: {contains: INVITE, count: 1}
      retransmissions: {at_least: 2, during: 64*T1}
      save: {tag: ":to-tag", nonce: {header: WWW-Authenticate, regex: 'nonce="(.*?)"'}}
  - expect: {status: 500, to_tag: {differs_from: first}, sdp: {present: false}}
""",
        )
    )
    inv, first, second = s.steps
    assert isinstance(inv, m.Send) and inv.sdp == "none"
    assert isinstance(first, m.Expect) and isinstance(second, m.Expect)
    assert first.accepts(500) and first.accepts(503) and not first.accepts(400)
    assert first.skips_provisionals
    assert [(r.name, r.present) for r in first.headers[:2]] == [
        ("Retry-After", True),
        ("Warning", False),
    ]
    assert first.headers[2].count == 1
    assert first.retransmissions == m.CountRule(at_least=2, during=32.0)
    assert first.retransmissions.accepts(3) and not first.retransmissions.accepts(1)
    assert first.save == (
        m.SaveRule("tag", ":to-tag"),
        m.SaveRule("nonce", "WWW-Authenticate", 'nonce="(.*?)"'),
    )
    assert second.to_tag == m.ToTagRule("differs_from", "first")
    assert second.sdp == m.SdpRules(present=False)


def test_room_steps_and_short_forms(tmp_path: Path) -> None:
    s = load_scenario(
        write(
            tmp_path,
            """\
title: t
checks: [EVT-03, TXN-05]
steps:
  - send: {method: INVITE, retransmit: {count: 4}}
  - expect: {status: 200}
  - ack: {withhold: true}
  - expect_request: {method: BYE, within: 64*T1, answer: 200}
  - expect_webhook: {type: peer.join.success, none_within: 1500}
  - expect_roster: {present: false, peer: {user_id: {matches: "^u-"}}}
  - expect_silence: 2s
  - pause: 250
  - media: {dtmf: {digits: "12#"}}
""",
        )
    )
    send, _, ack, req, hook, roster, silence, pause, media = s.steps
    assert isinstance(send, m.Send) and send.retransmit is not None
    assert send.retransmit.offsets() == (0.5, 1.5, 3.5, 7.5)
    assert isinstance(ack, m.Ack) and ack.withhold
    assert isinstance(req, m.ExpectRequest) and req.within == 32.0 and req.answer == 200
    assert isinstance(hook, m.ExpectWebhook) and hook.none_within == 1.5 and hook.within is None
    assert isinstance(roster, m.ExpectRoster) and not roster.present
    assert roster.peer[0].path == "user_id" and roster.peer[0].matches is not None
    assert isinstance(silence, m.ExpectSilence) and silence.duration == 2.0
    assert isinstance(pause, m.Pause) and pause.duration == 0.25
    assert isinstance(media, m.Media) and media.actions == {"dtmf": {"digits": "12#"}}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (200, 0.2),
        ("200ms", 0.2),
        ("1.5s", 1.5),
        ("T1", 0.5),
        ("64*T1", 32.0),
        ("2 * T2", 8.0),
        ("T4", 5.0),
    ],
)
def test_durations(text: int | str, seconds: float) -> None:
    assert m.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["200 msec", "T3", "-5ms", True])
def test_bad_durations_are_refused(text: str | bool) -> None:
    with pytest.raises(ValueError):
        m.parse_duration(text)


def test_checklist_ids_have_area_and_title() -> None:
    assert CHECKS["AUTH-07"].area == "Digest authentication"
    assert CHECKS["TXN-01"].title.startswith("100 Trying")
    checklist = Path(__file__).resolve().parents[3] / "shared" / "CHECKLIST.md"  # CI: ../shared
    if checklist.exists():
        import re

        listed = re.findall(r"^- ([A-Z]+-\d{2}) ", checklist.read_text(), flags=re.M)
        assert sorted(listed) == sorted(CHECKS)

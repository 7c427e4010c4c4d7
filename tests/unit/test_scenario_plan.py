"""Matrix expansion into plans, and the bindings a plan hands the executor."""

from __future__ import annotations

from pathlib import Path

from sipharness.scenario import expand, load_scenario, skip_reason
from sipharness.scenario import model as m

REPO = Path(__file__).resolve().parents[2]
# Fixed copies of the format's examples: the catalogue in scenarios/ may change freely.
SAMPLES = Path(__file__).parent / "scenario_examples"


def test_matrix_expands_to_the_product_in_file_order() -> None:
    s = load_scenario(SAMPLES / "headers/identity_header_case.yaml")
    plans = expand(s)
    assert [p.case_id for p in plans][:3] == [
        "header_case=lower-transport=udp",
        "header_case=lower-transport=tcp",
        "header_case=upper-transport=udp",
    ]
    assert len(plans) == 4 * 2
    assert len({p.case_id for p in plans}) == len(plans)
    assert [p.transport for p in plans[:2]] == ["udp", "tcp"]
    assert plans[0].name == f"{s.path}[header_case=lower-transport=udp]"


def test_plan_bindings_render_matrix_values_into_steps() -> None:
    s = load_scenario(SAMPLES / "headers/identity_header_case.yaml")
    mixed_tcp = next(p for p in expand(s) if p.case_id == "header_case=mixed-transport=tcp")
    b = mixed_tcp.bindings(target_host="127.0.0.1", target_port=5070, room_code="abc-defg-hij")
    send = mixed_tcp.steps[0]
    assert isinstance(send, m.Send)
    names = [h.name.render(b) for h in send.headers if h.name]
    assert names == ["X-100mS-dIsPlAy-NaMe", "X-100mS-uSeRiD"]
    assert send.headers[0].value.render(b) == "Zo%C3%AB%20Doe"
    via = send.headers[2].value.render(b)
    assert via.startswith("v: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK")
    user_id = send.headers[1].value.render(b)
    assert user_id.startswith("user-") and user_id == send.headers[1].value.render(b)


def test_wrong_credentials_cases_name_each_variant() -> None:
    s = load_scenario(SAMPLES / "auth/wrong_credentials.yaml")
    plans = expand(s)
    step = plans[0].steps[2]
    assert isinstance(step, m.AnswerChallenge)
    seen = [
        step.credentials.render(p.bindings(target_host="h", target_port=1, room_code="r"))
        for p in plans
    ]
    assert seen == ["password", "username", "realm", "uri", "empty_password"]
    assert all(p.transport == "udp" for p in plans)


def test_no_matrix_gives_one_plan_with_the_scenario_transport(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text("title: t\nchecks: [TXN-08]\ntransport: tls\nsteps: [options]\n")
    (plan,) = expand(load_scenario(path))
    assert plan.case_id == "" and plan.transport == "tls" and plan.name == str(path)


def test_each_run_of_a_plan_gets_its_own_saved_and_random_values() -> None:
    s = load_scenario(SAMPLES / "invite/answered_call.yaml")
    (plan,) = expand(s)
    one = plan.bindings(target_host="h", target_port=1, room_code="r")
    two = plan.bindings(target_host="h", target_port=1, room_code="r")
    one.save("peer_id", "p1")
    assert two.saved == {}
    assert one.lookup(("display_name",)) != two.lookup(("display_name",))


def test_scenario_needing_what_the_target_lacks_is_skipped_with_a_reason() -> None:
    s = load_scenario(SAMPLES / "invite/answered_call.yaml")
    reason = skip_reason(s, {"auth_401", "webhooks"})
    assert reason is not None and "roster" in reason and "webhooks" not in reason
    assert skip_reason(s, {"auth_401", "webhooks", "roster", "tls"}) is None


def test_auth_requirement_is_met_by_either_challenge_style(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("title: t\nchecks: [AUTH-01]\nrequires: [auth]\nsteps: [options]\n")
    s = load_scenario(path)
    assert skip_reason(s, {"auth_407"}) is None
    assert skip_reason(s, set()) is not None


def test_raw_message_keeps_its_blank_line_and_gets_crlf() -> None:
    s = load_scenario(SAMPLES / "dialog/cancel_and_timers.yaml")
    (plan,) = expand(s)
    raw = next(st for st in plan.steps if isinstance(st, m.Send) and st.raw is not None)
    data = raw.raw_bytes(
        plan.bindings(target_host="127.0.0.1", target_port=5060, room_code="abc-defg-hij")
    )
    assert data.startswith(b"OPTIONS sip:abc-defg-hij@127.0.0.1:5060 SIP/2.0\r\nVia: ")
    assert data.endswith(b"Content-Length: 0\r\n\r\n")
    assert b"Call-ID" not in data and b"\n" not in data.replace(b"\r\n", b"")

"""${...} templates: parsing, functions, and resolution against one run's bindings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sipharness.scenario.loader import load_scenario
from sipharness.scenario.source import ScenarioError
from sipharness.scenario.variables import (
    Bindings,
    Template,
    TemplateError,
    change_case,
    check_ref,
)


def bindings(**kw: Any) -> Bindings:
    return Bindings(
        target_host="127.0.0.1",
        target_port=5080,
        transport="tcp",
        room_code="abc-defg-hij",
        username="trunk",
        password="pw",
        **kw,
    )


def render(text: str, **kw: Any) -> str:
    return Template.parse(text).render(bindings(**kw))


def test_builtins_resolve() -> None:
    assert (
        render("sip:${room_code}@${target.host}:${target.port};transport=${target.transport}")
        == "sip:abc-defg-hij@127.0.0.1:5080;transport=tcp"
    )
    assert render("${credentials.username}") == "trunk"


def test_user_variables_may_use_other_variables() -> None:
    variables = {"who": Template.parse("Ann"), "display": Template.parse("${upper(who)} B")}
    assert render("${display}", variables=variables) == "ANN B"


def test_self_reference_is_an_error_not_a_hang() -> None:
    with pytest.raises(TemplateError, match="refers to itself"):
        render("${loop}", variables={"loop": Template.parse("x${loop}")})


def test_random_values_are_stable_within_a_run_and_fresh_across_runs() -> None:
    b = bindings()
    tpl = Template.parse("${random.tag}/${random.tag}/${random.other}")
    first, again, other = tpl.render(b).split("/")
    assert first == again != other
    assert Template.parse("${random.tag}").render(bindings()) != first


def test_saved_values_appear_after_save() -> None:
    b = bindings()
    tpl = Template.parse("nonce=${saved.nonce}")
    with pytest.raises(TemplateError, match="was not saved"):
        tpl.render(b)
    b.save("nonce", "abc")
    assert tpl.render(b) == "nonce=abc"


def test_matrix_and_functions() -> None:
    out = render('${case(matrix.hc, "X-100ms-UserID")}', matrix={"hc": "upper"})
    assert out == "X-100MS-USERID"
    assert render('${pct("Zoë Doe/1")}') == "Zo%C3%AB%20Doe%2F1"
    assert render('${repeat("ab", 3)}') == "ababab"
    assert render('${lower("A")}${upper("b")}') == "aB"
    assert len(render('${repeat("x", 1024)}')) == 1024


@pytest.mark.parametrize(
    ("mode", "out"),
    [
        ("lower", "x-100ms-display-name"),
        ("upper", "X-100MS-DISPLAY-NAME"),
        ("title", "X-100ms-Display-Name"),
        ("mixed", "X-100mS-dIsPlAy-NaMe"),
        ("as_is", "x-100MS-display-name"),
    ],
)
def test_case_modes(mode: str, out: str) -> None:
    assert change_case(mode, "x-100MS-display-name") == out


def test_literal_dollar_brace_and_quoted_arguments() -> None:
    assert render("cost $${price} $5") == "cost ${price} $5"
    assert render('${upper("a}b\\"c")}') == 'A}B"C'
    assert Template.parse("plain").is_literal
    assert not Template.parse("${room_code}").is_literal


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("${room_code", "unclosed"),
        ("${nope(x)}", "unknown function nope"),
        ("${upper(a, b)}", "takes 1 argument"),
        ("${upper(a}", "expected ',' or ')'"),
        ("${}", "expected a name"),
        ("${a b}", "unexpected 'b'"),
    ],
)
def test_parse_errors(text: str, problem: str) -> None:
    with pytest.raises(TemplateError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        Template.parse(text)


def test_refs_are_checked_against_the_scenario() -> None:
    variables, matrix, saved = {"who": "x"}, {"transport": ["udp"]}, {"nonce"}
    ok = [
        ("who",),
        ("room_code",),
        ("target", "host"),
        ("matrix", "transport"),
        ("saved", "nonce"),
        ("random", "anything"),
        ("credentials", "password"),
    ]
    assert all(check_ref(r, variables, matrix, saved) is None for r in ok)
    bad = {
        ("whom",): "unknown variable",
        ("target", "ip"): "known: host, port, transport",
        ("matrix", "case"): "does not define",
        ("saved", "tag"): "earlier step",
        ("target",): "needs a field",
        ("a", "b", "c"): "unknown variable",
    }
    for ref, problem in bad.items():
        assert problem in (check_ref(ref, variables, matrix, saved) or ""), ref
    assert Template.parse("${case(matrix.hc, who)}").refs() == [("matrix", "hc"), ("who",)]


def test_local_address_parts_come_from_our_sent_by() -> None:
    b = bindings(local_sent_by=lambda: "127.0.0.1:5071")
    tpl = Template.parse("SIP/2.0/UDP ${local.sent_by};x=${local.host};y=${local.port}")
    assert tpl.render(b) == "SIP/2.0/UDP 127.0.0.1:5071;x=127.0.0.1;y=5071"


def test_local_ipv6_host_is_bare_and_sent_by_is_bracketed() -> None:
    b = bindings(local_sent_by=lambda: "[::1]:5071")
    assert Template.parse("${local.sent_by} ${local.host} ${local.port}").render(b) == (
        "[::1]:5071 ::1 5071"
    )


def test_local_address_is_asked_for_each_rendering_and_only_when_named() -> None:
    asked: list[str] = []
    addresses = iter(["127.0.0.1:5071", "127.0.0.1:6000"])

    def sent_by() -> str:
        asked.append("asked")
        return next(addresses)

    b = bindings(local_sent_by=sent_by)
    assert Template.parse("${room_code}").render(b) == "abc-defg-hij"
    assert asked == []
    # The runner answers for the transport of the step being run, which may change.
    assert Template.parse("${local.port}").render(b) == "5071"
    assert Template.parse("${local.port}").render(b) == "6000"


def test_local_address_outside_a_run_is_an_error_naming_the_variable() -> None:
    with pytest.raises(TemplateError, match=r"\$\{local\.sent_by\} is known only while"):
        render("Via: SIP/2.0/UDP ${local.sent_by}")


def test_local_names_are_checked_like_other_builtins() -> None:
    for name in ("host", "port", "sent_by"):
        assert check_ref(("local", name), {}, {}, set()) is None
    assert check_ref(("local", "address"), {}, {}, set()) == (
        "unknown variable ${local.address} (known: host, port, sent_by)"
    )
    assert "needs a field" in (check_ref(("local",), {}, {}, set()) or "")


def test_an_unknown_local_name_in_a_scenario_is_a_file_line_column_error(tmp_path: Path) -> None:
    path = tmp_path / "local.yaml"
    path.write_text(
        "title: our address\n"
        "checks: [DLG-08]\n"
        "variables: {local: x}\n"
        "steps:\n"
        "  - send:\n"
        "      method: OPTIONS\n"
        '      headers: [[X-Us, "${local.ip}"]]\n'
        "  - expect: {status: 200}\n"
    )
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path, display="local.yaml")
    assert str(raised.value).splitlines() == [
        "local.yaml:3:13: variables.local: 'local' is a built-in variable name",
        "local.yaml:7:24: steps[0].send.headers[0][1]: unknown variable ${local.ip} "
        "(known: host, port, sent_by)",
    ]

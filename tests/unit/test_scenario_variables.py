"""${...} templates: parsing, functions, and resolution against one run's bindings."""

from __future__ import annotations

from typing import Any

import pytest

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

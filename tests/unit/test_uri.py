"""SIP/SIPS/tel URIs: parts, Twilio-style ?headers decoded once, round trips, clear errors."""

from __future__ import annotations

import pytest

from sipharness.sip.message import build_request
from sipharness.sip.uri import SipParseError, SipURI, parse_uri


def test_twilio_sip_uri_headers_become_request_headers() -> None:
    uri = parse_uri(
        "sip:abc-defg-hij@bridge.example.com?X-100ms-Display-Name=John%20Doe&X-100ms-UserID=xyz"
    )
    assert (uri.scheme, uri.user, uri.host, uri.port) == (
        "sip",
        "abc-defg-hij",
        "bridge.example.com",
        None,
    )
    assert uri.headers == [("X-100ms-Display-Name", "John Doe"), ("X-100ms-UserID", "xyz")]
    target = uri.without_headers()
    assert str(target) == "sip:abc-defg-hij@bridge.example.com"
    assert uri.headers, "without_headers must not change the original"
    req = build_request("INVITE", target, uri.headers)
    assert req.uri == "sip:abc-defg-hij@bridge.example.com"
    assert req.header("x-100ms-display-name") == "John Doe"


def test_headers_are_percent_decoded_exactly_once() -> None:
    uri = parse_uri("sip:room@h?X-100ms-Display-Name=50%2520off%26more&X-Plus=a+b")
    assert uri.headers == [("X-100ms-Display-Name", "50%20off&more"), ("X-Plus", "a+b")]
    utf8 = parse_uri("sip:room@h?X-100ms-Display-Name=J%C3%B6rg")
    assert utf8.headers == [("X-100ms-Display-Name", "Jörg")]


def test_headers_are_escaped_when_written() -> None:
    uri = SipURI(user="room", host="h", headers=[("X-100ms-Display-Name", "Doe & Sons 100%")])
    assert str(uri) == "sip:room@h?X-100ms-Display-Name=Doe%20%26%20Sons%20100%25"
    assert parse_uri(str(uri)).headers == uri.headers


@pytest.mark.parametrize(
    "text",
    [
        "sip:abc-defg-hij@127.0.0.1",
        "sip:127.0.0.1:5060",
        "sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr",
        "sip:user;par=u%40example.net@example.com",
        "sip:sips%3Auser%40example.com@example.net",
        "sip:+15551234;phone-context=example.com@gw.example.com;user=phone",
        "sip:h;maddr=239.255.255.1;ttl=15;LR",
        "tel:+1-201-555-0123;phone-context=example.com",
        "sip:room@h?Subject=hi&X-A=1",
    ],
)
def test_round_trip(text: str) -> None:
    assert str(parse_uri(text)) == text


def test_parts() -> None:
    uri = parse_uri("SIPS:alice:secret@[::1]:5061;transport=tcp;lr;x=%41")
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sips", "alice", "secret", "[::1]", 5061,
    )  # fmt: skip
    assert uri.params == {"transport": "tcp", "lr": None, "x": "%41"}
    assert list(uri.params) == ["transport", "lr", "x"]
    assert uri.param("LR") == "" and uri.param("Transport") == "tcp" and uri.param("q") is None
    assert uri.host_port == "[::1]:5061"
    tel = parse_uri("tel:+15551234")
    assert (tel.scheme, tel.user, tel.host) == ("tel", "+15551234", "")


def test_semicolon_in_user_part() -> None:
    uri = parse_uri("sip:user;par=u%40example.net@example.com")
    assert uri.user == "user;par=u%40example.net" and uri.params == {}
    assert uri.decoded_user == "user;par=u@example.net"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("<sip:a@b>", "enclosed in <>"),
        ("sip:a@b; lr", "whitespace"),
        ("http://example.com", "not a sip:"),
        ("sip:", "bad host"),
        ("sip:a@", "bad host"),
        ("sip:a@b:99999", "out of range"),
        ("sip:a@b:5x", "bad port"),
        ("sip:a@b;;x", "bad URI parameter"),
        ("sip:a@b;", "trailing"),
        ("sip:a%zz@b", "bad %-escape"),
        ("sip:a@b?noequals", "name=value"),
        ("sip:a@[::1", "IPv6"),
        ("sip:a b@c", "whitespace"),
        ("tel:call-me", "telephone number"),
        ("", "not a sip:"),
    ],
)
def test_junk_is_refused_clearly(text: str, words: str) -> None:
    with pytest.raises(SipParseError, match=words):
        parse_uri(text)
    with pytest.raises(ValueError):
        parse_uri(text)

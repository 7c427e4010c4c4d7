"""The lossless message model: exact round trips, builder bytes, header views, framing."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import pytest

from sipharness.sip.message import (
    Header,
    NameAddr,
    Request,
    Response,
    SipParseError,
    StreamParser,
    Via,
    build_request,
    build_response,
    new_branch,
    new_call_id,
    new_tag,
    new_via,
    parse_message,
)

TORTURE = Path(__file__).resolve().parents[2] / "fixtures" / "rfc4475"

INVITE = (
    b"INVITE sip:abc-defg-hij@127.0.0.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds;rport\r\n"
    b"v: SIP/2.0/TCP [::1]:5080 ;received=10.0.0.1; branch=z9hG4bKabc,\r\n"
    b"   SIP/2.0/UDP proxy.example.com;branch=z9hG4bK3\r\n"
    b"Max-Forwards: 70\r\n"
    b'f: "Doe, John" <sip:+15551234@trunk.example.com>;tag=1928301774\r\n'
    b"t: <sip:abc-defg-hij@127.0.0.1>\r\n"
    b"i: a84b4c76e66710@pc33.example.com\r\n"
    b"CSeq:   314159\r\n"
    b"\t INVITE\r\n"
    b"m: <sip:trunk@127.0.0.1:5070;transport=udp>;expires=60, *\r\n"
    b"X-100ms-Display-Name: Doe, John\r\n"
    b"x-100MS-display-name: duplicate\r\n"
    b'WWW-Authenticate: Digest realm="a,b", nonce="n"\r\n'
    b"Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n"
    b"Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    b"c: application/SDP; charset=utf-8\r\n"
    b"l: 10\r\n"
    b"\r\n"
    b"v=0\r\no=- 1"
)


def test_parsed_message_gives_back_its_exact_bytes() -> None:
    msg = parse_message(INVITE)
    assert msg.to_bytes() == INVITE
    assert [h.raw for h in msg.headers][1] == (
        b"v: SIP/2.0/TCP [::1]:5080 ;received=10.0.0.1; branch=z9hG4bKabc,\r\n"
        b"   SIP/2.0/UDP proxy.example.com;branch=z9hG4bK3"
    )


def test_bare_lf_line_ends_round_trip_and_parse() -> None:
    data = INVITE.replace(b"\r\n", b"\n").replace(b"l: 10", b"l: 9")
    msg = parse_message(data)
    assert msg.to_bytes() == data
    assert msg.cseq == (314159, "INVITE")
    assert msg.body == b"v=0\no=- 1"
    assert (
        msg.headers[1].raw == b"v: SIP/2.0/TCP [::1]:5080 ;received=10.0.0.1; branch=z9hG4bKabc,\n"
        b"   SIP/2.0/UDP proxy.example.com;branch=z9hG4bK3"
    )


def test_leading_crlf_keepalives_are_skipped() -> None:
    msg = parse_message(b"\r\n\r\n" + INVITE)
    assert isinstance(msg, Request)
    assert msg.to_bytes() == INVITE


def test_lookup_is_case_insensitive_and_compact_aware() -> None:
    msg = parse_message(INVITE)
    assert msg.header("call-id") == msg.header("I") == "a84b4c76e66710@pc33.example.com"
    assert msg.header("X-100MS-DISPLAY-NAME") == "Doe, John"
    assert msg.header_values("x-100ms-display-name") == ["Doe, John", "duplicate"]
    assert msg.has_header("content-type") and not msg.has_header("subject")
    assert [h.canonical for h in msg.headers][:4] == ["via", "via", "max-forwards", "from"]
    assert msg.headers[1].name == "v"


def test_header_values_splits_only_list_headers() -> None:
    msg = parse_message(INVITE)
    assert msg.header_values("via") == [
        "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds;rport",
        "SIP/2.0/TCP [::1]:5080 ;received=10.0.0.1; branch=z9hG4bKabc",
        "SIP/2.0/UDP proxy.example.com;branch=z9hG4bK3",
    ]
    assert msg.header_values("record-route") == [
        "<sip:p1.example.com;lr>",
        "<sip:p2.example.com;lr>",
    ]
    assert msg.header_values("www-authenticate") == ['Digest realm="a,b", nonce="n"']
    assert msg.header_values("date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]


def test_folded_value_is_unfolded_with_single_spaces() -> None:
    msg = parse_message(INVITE)
    assert msg.header("cseq") == "314159 INVITE"


def test_parsed_views() -> None:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    assert (msg.method, msg.uri, msg.version) == (
        "INVITE",
        "sip:abc-defg-hij@127.0.0.1:5060",
        "SIP/2.0",
    )
    assert msg.call_id == "a84b4c76e66710@pc33.example.com"
    assert msg.cseq == (314159, "INVITE")
    assert msg.max_forwards == 70
    assert msg.content_length == 10
    assert msg.content_type == "application/sdp"
    assert [(v.transport, v.host, v.port) for v in msg.vias] == [
        ("UDP", "127.0.0.1", 5070),
        ("TCP", "[::1]", 5080),
        ("UDP", "proxy.example.com", None),
    ]
    top = msg.top_via
    assert top is not None and top.branch == "z9hG4bK776asdhds" and top.rport == ""
    assert msg.vias[1].received == "10.0.0.1" and msg.vias[1].rport is None
    assert msg.vias[1].branch == "z9hG4bKabc"
    assert msg.from_ == NameAddr(
        "Doe, John", "sip:+15551234@trunk.example.com", {"tag": "1928301774"}
    )
    assert msg.to is not None and msg.to.tag is None and msg.to.uri == "sip:abc-defg-hij@127.0.0.1"
    assert msg.contact == [
        NameAddr(None, "sip:trunk@127.0.0.1:5070;transport=udp", {"expires": "60"}),
        NameAddr(None, "*"),
    ]
    assert [r.uri for r in msg.record_route] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert msg.route == []


def test_response_views() -> None:
    data = (
        b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1;rport=5070;received=1.2.3.4\r\n"
        b"To: <sip:a@b>;tag=xyz\r\nFrom: <sip:c@d>;tag=1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(data)
    assert isinstance(msg, Response)
    assert (msg.status, msg.reason) == (180, "Ringing")
    assert msg.vias[0].rport == "5070" and msg.vias[0].received == "1.2.3.4"
    assert msg.to is not None and msg.to.tag == "xyz"
    msg.validate()


def test_views_report_the_line_of_a_malformed_field() -> None:
    msg = parse_message(INVITE.replace(b"CSeq:   314159", b"CSeq:   31x4159"))
    with pytest.raises(SipParseError) as err:
        _ = msg.cseq
    assert err.value.line == 9
    assert str(err.value).startswith("line 9: CSeq")


@pytest.mark.parametrize(
    ("data", "line", "words"),
    [
        (b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\nNoColonHere\r\n\r\n", 3, "without ':'"),
        (b"OPTIONS sip:a@b SIP/2.0\r\n folded first\r\n\r\n", 2, "continuation"),
        (b"OPTIONS sip:a@b SIP/2.0\r\nBad Name: x\r\n\r\n", 2, "not a token"),
        (b"OPTIONS sip:a@b\r\nVia: x\r\n\r\n", 1, "request line"),
        (b"OPTIONS sip:a@b HTTP/1.1\r\nVia: x\r\n\r\n", 1, "version"),
        (b"SIP/2.0 2000 OK\r\nVia: x\r\n\r\n", 1, "status code"),
        (b"OPTIONS sip:a@b SIP/2.0\r\nl: 5\r\n\r\nabc", 2, "only 3 octets"),
        (b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\nContent-Length: 0\r\n\r\n", 3, "several"),
    ],
)
def test_parse_errors_say_what_and_where(data: bytes, line: int, words: str) -> None:
    with pytest.raises(SipParseError) as err:
        parse_message(data)
    assert err.value.line == line
    assert words in err.value.reason
    assert str(err.value) == f"line {line}: {err.value.reason}"


def test_truncated_header_section_is_an_error() -> None:
    with pytest.raises(SipParseError, match="no empty line"):
        parse_message(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n")


def test_datagram_framing_by_content_length() -> None:
    head = b"MESSAGE sip:a@b SIP/2.0\r\nCall-ID: x\r\n"
    assert parse_message(head + b"\r\nhello world").body == b"hello world"
    short = parse_message(head + b"Content-Length: 5\r\n\r\nhello world")
    assert short.body == b"hello"
    assert short.to_bytes() == head + b"Content-Length: 5\r\n\r\nhello"


def test_raw_non_utf8_bytes_round_trip() -> None:
    data = b"OPTIONS sip:a@b SIP/2.0\r\nX-Name: caf\xe9 \xff\r\nSubject: \xe2\x9c\x93\r\n\r\n"
    msg = parse_message(data)
    assert msg.to_bytes() == data
    assert msg.header("subject") == "\u2713"
    assert msg.headers[0].value.encode("utf-8", "surrogateescape") == b"caf\xe9 \xff"


def test_build_request_sends_exactly_the_given_fields() -> None:
    req = build_request(
        "INVITE",
        "sip:room@127.0.0.1",
        [
            ("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1"),
            ("v", "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK0"),
            ("TO", "<sip:room@127.0.0.1>"),
            ("x-100ms-userid", "a"),
            ("X-100ms-UserID", "b"),
            b"Subject :   odd   spacing  ",
            b"Folded: one\r\n two",
            b"this line is malformed",
        ],
        b"body",
    )
    assert req.to_bytes() == (
        b"INVITE sip:room@127.0.0.1 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n"
        b"v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK0\r\n"
        b"TO: <sip:room@127.0.0.1>\r\n"
        b"x-100ms-userid: a\r\n"
        b"X-100ms-UserID: b\r\n"
        b"Subject :   odd   spacing  \r\n"
        b"Folded: one\r\n two\r\n"
        b"this line is malformed\r\n"
        b"Content-Length: 4\r\n"
        b"\r\n"
        b"body"
    )
    assert req.header("subject") == "odd   spacing"
    assert req.header("folded") == "one two"
    assert req.headers[7].name == "" and req.headers[7].canonical == ""
    assert req.header_values("x-100ms-userid") == ["a", "b"]


def test_build_request_content_length_control() -> None:
    given = build_request("MESSAGE", "sip:a@b", [("l", "99")], b"abc")
    assert given.to_bytes().count(b"99") == 1 and b"Content-Length" not in given.to_bytes()
    none = build_request("MESSAGE", "sip:a@b", [], b"abc", content_length=False)
    assert none.to_bytes() == b"MESSAGE sip:a@b SIP/2.0\r\n\r\nabc"


def test_built_request_parses_back_to_the_same_views() -> None:
    branch, tag, call_id = new_branch(), new_tag(), new_call_id("127.0.0.1")
    req = build_request(
        "OPTIONS",
        "sip:room@127.0.0.1",
        [
            ("Via", f"SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport"),
            ("From", f"<sip:caller@127.0.0.1>;tag={tag}"),
            ("To", "<sip:room@127.0.0.1>"),
            ("Call-ID", call_id),
            ("CSeq", "7 OPTIONS"),
            ("Max-Forwards", "70"),
        ],
    )
    back = parse_message(req.to_bytes())
    assert back.to_bytes() == req.to_bytes()
    assert back.top_via is not None and back.top_via.branch == branch
    assert back.from_ is not None and back.from_.tag == tag
    assert (back.call_id, back.cseq) == (call_id, (7, "OPTIONS"))
    back.validate()


def test_build_response_copies_the_dialog_fields() -> None:
    req = parse_message(INVITE)
    assert isinstance(req, Request)
    resp = build_response(req, 486, to_tag="t1", headers=[("Retry-After", "30")])
    assert resp.start_line == b"SIP/2.0 486 Busy Here"
    assert [h.raw for h in resp.headers if h.canonical == "via"] == [
        h.raw for h in req.headers if h.canonical == "via"
    ]
    assert [h.canonical for h in resp.headers] == [
        "via", "via", "from", "to", "call-id", "cseq", "retry-after", "content-length",
    ]  # fmt: skip
    assert resp.to is not None and resp.to.tag == "t1"
    assert resp.header("to") == "<sip:abc-defg-hij@127.0.0.1>;tag=t1"
    assert resp.cseq == (314159, "INVITE")
    assert resp.header("content-length") == "0"
    parse_message(resp.to_bytes()).validate()


def test_build_response_keeps_an_existing_to_tag_and_reason() -> None:
    req = parse_message(INVITE.replace(b"t: <sip:abc-defg-hij@127.0.0.1>", b"t: <sip:x@y>;tag=old"))
    assert isinstance(req, Request)
    resp = build_response(req, 200, "Fine", to_tag="new", body=b"v=0\r\n")
    assert resp.to is not None and resp.to.tag == "old"
    assert (resp.status, resp.reason) == (200, "Fine")
    assert resp.header("content-length") == "5" and resp.body == b"v=0\r\n"
    assert build_response(req, 299).start_line == b"SIP/2.0 299 "


def test_edits_return_new_messages_and_change_only_their_field() -> None:
    msg = parse_message(INVITE)
    replaced = msg.replace_header("Call-ID", "new-id")
    assert replaced.to_bytes() == INVITE.replace(
        b"i: a84b4c76e66710@pc33.example.com", b"i: new-id"
    )
    assert replaced.call_id == "new-id" and msg.call_id == "a84b4c76e66710@pc33.example.com"
    removed = msg.remove_header("x-100ms-display-name")
    assert removed.to_bytes() == INVITE.replace(
        b"X-100ms-Display-Name: Doe, John\r\nx-100MS-display-name: duplicate\r\n", b""
    )
    added = msg.add_header("Subject", "hi", before="f")
    assert added.to_bytes() == INVITE.replace(b"f: ", b"Subject: hi\r\nf: ", 1)
    assert msg.add_header("X-A", "1").to_bytes().endswith(b"l: 10\r\nX-A: 1\r\n\r\nv=0\r\no=- 1")
    with pytest.raises(KeyError):
        msg.replace_header("Subject", "x")


def test_with_body_updates_content_length() -> None:
    msg = parse_message(INVITE).with_body(b"abc")
    assert msg.body == b"abc" and msg.content_length == 3
    assert msg.to_bytes().endswith(b"l: 3\r\n\r\nabc")


def test_cached_views_follow_edits() -> None:
    msg = parse_message(INVITE)
    assert msg.cseq == (314159, "INVITE")
    assert msg.replace_header("cseq", "2 BYE").cseq == (2, "BYE")


@pytest.mark.parametrize(
    ("text", "via"),
    [
        ("SIP/2.0/UDP 1.2.3.4", Via("UDP", "1.2.3.4")),
        (
            "SIP/2.0/tls h.example.com:5061;branch=z9hG4bKx",
            Via("TLS", "h.example.com", 5061, {"branch": "z9hG4bKx"}),
        ),
        (
            "SIP / 2.0 / TCP [2001:db8::1]:5060 ; rport ; received=::1",
            Via("TCP", "[2001:db8::1]", 5060, {"rport": None, "received": "::1"}),
        ),
    ],
)  # fmt: skip
def test_via_values(text: str, via: Via) -> None:
    assert Via.parse(text) == via


@pytest.mark.parametrize(
    ("transport", "sent_by", "rport"),
    [("UDP", "127.0.0.1:5070", True), ("tcp", "[::1]:5080", False), ("TLS", "h.example", True)],
)
def test_a_new_via_reads_back_as_its_text_parses(transport: str, sent_by: str,
                                                 rport: bool) -> None:  # fmt: skip
    """new_via remembers the Via it made; a request carrying it reads exactly what parsing
    its text gives (the cache must not change what a view says)."""
    text = new_via(transport, sent_by, rport=rport)
    assert text.startswith(f"SIP/2.0/{transport} {sent_by};branch=z9hG4bK")
    assert text.endswith(";rport") == rport
    request = build_request("OPTIONS", "sip:x@h", [("Via", text), ("CSeq", "1 OPTIONS")])
    assert request.vias == [Via.parse(text)]
    assert request.vias[0].branch != Via.parse(new_via(transport, sent_by)).branch


@pytest.mark.parametrize(
    "text",
    ["SIP/2.0 h", "SIP/2.0/UDP", "SIP/2.0/UDP h:99999", "SIP/2.0/UDP h;;x", "SIP/2.0/UDP h;b=1 2"],
)
def test_bad_via_values(text: str) -> None:
    with pytest.raises(ValueError):
        Via.parse(text)


@pytest.mark.parametrize(
    ("text", "addr"),
    [
        ('"A \\"B\\"" <sip:a@b>;tag=1', NameAddr('A "B"', "sip:a@b", {"tag": "1"})),
        ("Alice Smith <sip:a@b;lr>", NameAddr("Alice Smith", "sip:a@b;lr")),
        ("sip:a@b;tag=x;Q=0.5", NameAddr(None, "sip:a@b", {"tag": "x", "q": "0.5"})),
        ('"" <tel:+1555>', NameAddr("", "tel:+1555")),
        ("*", NameAddr(None, "*")),
    ],
)
def test_name_addr_values(text: str, addr: NameAddr) -> None:
    assert NameAddr.parse(text) == addr


@pytest.mark.parametrize(
    "text",
    [
        '"unterminated <sip:a@b>',
        "Bell, Alexander <sip:a@b>",
        "< sip:a@b >",
        "sip:a@b?x=y",
        "noscheme",
        "<sip:a@b>;;",
    ],
)
def test_bad_name_addr_values(text: str) -> None:
    with pytest.raises(ValueError):
        NameAddr.parse(text)


def test_name_addr_writes_back() -> None:
    addr = NameAddr('Doe "J"', "sip:a@b", {"tag": "x"})
    assert str(addr) == '"Doe \\"J\\"" <sip:a@b>;tag=x'
    assert NameAddr.parse(str(addr)) == addr


def test_validate_flags_what_a_uas_answers_400() -> None:
    req = parse_message(INVITE)
    req.validate()
    for edit, words in [
        (req.remove_header("call-id"), "call-id"),
        (req.replace_header("cseq", "1 BYE"), "differs"),
        (req.add_header("To", "<sip:other@x>"), "'to' appears 2 times"),
        (req.replace_header("max-forwards", "256"), "Max-Forwards"),
    ]:
        with pytest.raises(SipParseError, match=words):
            edit.validate()


def test_header_dataclass_builds_its_raw_line() -> None:
    h = Header.build("X-100ms-Display-Name", "Jöhn")
    assert h.raw == "X-100ms-Display-Name: Jöhn".encode()
    assert h.canonical == "x-100ms-display-name"
    assert Header.build("k", "timer").canonical == "supported"


def test_new_identifiers_are_fresh_tokens() -> None:
    branches = {new_branch() for _ in range(50)}
    assert len(branches) == 50 and all(b.startswith("z9hG4bK") and len(b) > 16 for b in branches)
    assert len({new_tag() for _ in range(50)}) == 50
    call_id = new_call_id("10.0.0.1")
    assert call_id.endswith("@10.0.0.1") and len(call_id) > 20


# --- StreamParser ------------------------------------------------------------------------

STREAM_MESSAGES = [
    INVITE,
    b"SIP/2.0 100 Trying\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n",
    b"MESSAGE sip:a@b SIP/2.0\nl: 3\n\n\r\n\x00",
]


def test_stream_parser_frames_messages_split_at_every_byte() -> None:
    stream = b"\r\n\r\n".join(STREAM_MESSAGES) + b"\r\n"
    for cut in range(len(stream) + 1):
        parser = StreamParser()
        got = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
        assert [m.to_bytes() for m in got] == STREAM_MESSAGES, cut
        assert parser.buffered == 0


def test_stream_parser_byte_by_byte() -> None:
    parser = StreamParser()
    got = []
    for b in b"".join(STREAM_MESSAGES):
        got += parser.feed(bytes([b]))
    assert [m.to_bytes() for m in got] == STREAM_MESSAGES


def test_stream_parser_keeps_incomplete_body_until_it_arrives() -> None:
    parser = StreamParser()
    assert parser.feed(INVITE[:-3]) == []
    assert parser.buffered == len(INVITE) - 3
    (msg,) = parser.feed(INVITE[-3:])
    assert msg.body == b"v=0\r\no=- 1"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "no scheme"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n", "request line"),
        (b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n", "no Content-Length"),
        (b"OPTIONS sip:a@b SIP/2.0\r\nl: -1\r\n\r\n", "non-negative"),
    ],
)
def test_stream_parser_rejects_garbage(data: bytes, words: str) -> None:
    parser = StreamParser()
    with pytest.raises(SipParseError, match=words):
        parser.feed(data)
    with pytest.raises(SipParseError):
        parser.feed(STREAM_MESSAGES[1])


def test_stream_parser_limits_message_size() -> None:
    parser = StreamParser(max_message_size=1000)
    with pytest.raises(SipParseError, match="1000"):
        parser.feed(b"OPTIONS sip:a@b SIP/2.0\r\n" + b"X-Pad: " + b"a" * 2000)
    big = StreamParser(max_message_size=1000)
    with pytest.raises(SipParseError, match="larger"):
        big.feed(b"OPTIONS sip:a@b SIP/2.0\r\nl: 5000\r\n\r\n")


def _mutations(seed: int, corpus: list[bytes], count: int) -> list[bytes]:
    rng = random.Random(seed)
    pieces = [b"\r\n", b" ", b"\t", b":", b";", b",", b"<", b">", b'"', b"\\", b"=", b"@",
              b"/", b"\x00", b"\xff", b"%", b"?", b"[", b"]", b"0", b"99999999999"]  # fmt: skip
    out = []
    for _ in range(count):
        data = bytearray(rng.choice(corpus))
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(data) + 1)
            roll = rng.random()
            if roll < 0.4:
                data[pos : pos + rng.randint(1, 5)] = rng.choice(pieces)
            elif roll < 0.7:
                data[pos:pos] = rng.choice(pieces)
            else:
                del data[pos : pos + rng.randint(1, 8)]
        out.append(bytes(data))
    return out


def test_mangled_messages_only_ever_raise_sip_parse_error() -> None:
    corpus = [p.read_bytes() for p in sorted(TORTURE.glob("*.dat"))] + STREAM_MESSAGES
    views = ("vias", "from_", "to", "contact", "route", "record_route", "cseq", "max_forwards",
             "content_length", "content_type", "call_id")  # fmt: skip
    parsed = 0
    for data in _mutations(4475, corpus, 1500):
        with contextlib.suppress(SipParseError):
            StreamParser().feed(data)
        try:
            msg = parse_message(data)
        except SipParseError:
            continue
        parsed += 1
        with contextlib.suppress(SipParseError):
            msg.validate()
        for view in views:
            with contextlib.suppress(SipParseError):
                getattr(msg, view)
    assert parsed > 300


@pytest.mark.parametrize(
    ("compact", "long"),
    [
        ("a", "Accept-Contact"), ("b", "Referred-By"), ("c", "Content-Type"),
        ("d", "Request-Disposition"), ("e", "Content-Encoding"), ("f", "From"),
        ("i", "Call-ID"), ("j", "Reject-Contact"), ("k", "Supported"), ("l", "Content-Length"),
        ("m", "Contact"), ("n", "Identity-Info"), ("o", "Event"), ("r", "Refer-To"),
        ("s", "Subject"), ("t", "To"), ("u", "Allow-Events"), ("v", "Via"),
        ("x", "Session-Expires"), ("y", "Identity"),
    ],
)  # fmt: skip
def test_compact_forms_are_found_by_long_name(compact: str, long: str) -> None:
    value = "0" if compact == "l" else f"value-{compact}"
    msg = parse_message(f"OPTIONS sip:a@b SIP/2.0\r\n{compact.upper()}: {value}\r\n\r\n".encode())
    assert msg.header(long) == msg.header(long.upper()) == msg.header(compact) == value
    assert msg.headers[0].canonical == long.lower()

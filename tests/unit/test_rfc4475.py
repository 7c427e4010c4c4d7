"""RFC 4475 torture messages: valid ones round-trip byte for byte, invalid ones are refused.

Every one of the 49 files is in exactly one of four groups below, with the reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sipharness.sip.message import Request, Response, SipParseError, parse_message
from sipharness.sip.uri import parse_uri

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "rfc4475"

VALID = [
    # 3.1.1 valid syntax
    "wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp", "longreq", "dblreq",
    "semiuri", "transports", "mpart01", "unreason", "noreason",
    # 3.3 application layer (well-formed; the answer is a UAS decision) and 3.4
    "unkscm", "novelsc", "unksm2", "bext01", "invut", "regaut01", "bcast", "zeromf",
    "cparam01", "cparam02", "regescrt", "sdp01", "inv2543",
]  # fmt: skip

REJECTED_BY_PARSER = {
    "clerr": "Content-Length 9999 but only 154 octets",
    "ncl": "Content-Length '-999' is not a non-negative integer",
    "mcl01": "several Content-Length fields",
    "ltgtruri": "Request-URI must not be enclosed in <>",
    "lwsruri": "request line is not",
    "lwsstart": "request line is not",
    "trws": "request line is not",
    "bigcode": "status code '4294967301' is not 100..699",
    # baddn also has no empty line after its headers (see fixtures/rfc4475/INDEX.md).
    "baddn": "no empty line after the header fields",
}

REJECTED_BY_VALIDATE = {
    "badinv01": "empty Via parameter",
    "quotbal": "unterminated quoted string",
    "scalar02": "CSeq number '36893488147419103232' is not 0..2**31-1",
    "scalarlg": "CSeq number",
    "escruri": "Request-URI carries ?headers",
    "regbadct": "must be enclosed in <>",
    "badaspec": "bad URI ' sip:t.watson@example.org ' inside <>",
    "mismatch01": "CSeq method 'INVITE' differs from the request method 'OPTIONS'",
    "mismatch02": "CSeq method 'INVITE' differs from the request method 'NEWMETHOD'",
    "insuf": "missing mandatory header field",
    "multi01": "appears 2 times",
}

ACCEPTED_THOUGH_INVALID = {
    "badvers": "SIP/7.0 is well-formed syntax; answering 505 is the UAS's decision",
    "baddate": "Date is not interpreted; RFC 4475 §3.1.2.12 lets an element ignore it",
    "badbranch": "a bare z9hG4bK branch is a transaction-matching matter, not syntax",
}


def read(name: str) -> bytes:
    return (CORPUS / f"{name}.dat").read_bytes()


def test_every_corpus_file_is_classified_once() -> None:
    groups = [VALID, REJECTED_BY_PARSER, REJECTED_BY_VALIDATE, ACCEPTED_THOUGH_INVALID]
    names = [n for g in groups for n in g]
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(p.stem for p in CORPUS.glob("*.dat"))
    assert len(names) == 49


@pytest.mark.parametrize("name", VALID + sorted(ACCEPTED_THOUGH_INVALID))
def test_valid_messages_round_trip_exactly(name: str) -> None:
    data = read(name)
    msg = parse_message(data)
    if name == "dblreq":
        assert data.startswith(msg.to_bytes()) and len(msg.to_bytes()) < len(data)
    else:
        assert msg.to_bytes() == data
    msg.validate()


@pytest.mark.parametrize("name", sorted(REJECTED_BY_PARSER))
def test_parser_rejects(name: str) -> None:
    with pytest.raises(SipParseError) as err:
        parse_message(read(name))
    assert REJECTED_BY_PARSER[name] in err.value.reason


@pytest.mark.parametrize("name", sorted(REJECTED_BY_VALIDATE))
def test_validate_rejects(name: str) -> None:
    msg = parse_message(read(name))
    assert msg.to_bytes() == read(name)
    with pytest.raises(SipParseError) as err:
        msg.validate()
    assert REJECTED_BY_VALIDATE[name] in err.value.reason


def test_baddn_display_name_is_refused_once_framed() -> None:
    msg = parse_message(read("baddn") + b"\r\n")
    with pytest.raises(SipParseError, match="need"):
        _ = msg.from_


def test_wsinv_values() -> None:
    msg = parse_message(read("wsinv"))
    assert msg.to is not None and msg.to.uri == "sip:vivekg@chair-dnrc.example.com"
    assert msg.to.tag == "1918181833n"
    assert msg.from_ is not None and msg.from_.display == 'J Rosenberg \\"'
    assert msg.from_.tag == "98asjd8"
    assert msg.max_forwards == 68
    assert msg.cseq == (9, "INVITE")
    assert msg.header("subject") == ""
    assert msg.header("newfangledheader") == "newfangled value continued newfangled value"
    assert msg.header("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert [(v.transport, v.host, v.branch) for v in msg.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    (contact,) = msg.contact
    assert contact.display == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert [r.uri for r in msg.route] == [
        "sip:services.example.com;lr;unknownwith=value;unknown-no-value"
    ]
    assert len(msg.body) == msg.content_length == 150


def test_esc01_escapes_are_kept_and_decoded_once() -> None:
    msg = parse_message(read("esc01"))
    assert isinstance(msg, Request)
    assert parse_uri(msg.uri).decoded_user == "sips:user@example.com"
    assert msg.to is not None and parse_uri(msg.to.uri).decoded_user == "user"
    assert msg.from_ is not None and parse_uri(msg.from_.uri).decoded_user == "I have spaces"
    (contact,) = msg.contact
    assert parse_uri(contact.uri).params == {"%6C%72": None, "n%61me": "v%61lue%25%34%31"}


def test_semiuri_user_part_keeps_its_semicolon() -> None:
    msg = parse_message(read("semiuri"))
    assert isinstance(msg, Request)
    uri = parse_uri(msg.uri)
    assert (uri.user, uri.host, uri.params) == ("user;par=u%40example.net", "example.com", {})
    assert uri.decoded_user == "user;par=u@example.net"
    assert msg.header_values("accept") == [
        "application/sdp", "application/pkcs7-mime", "multipart/mixed", "multipart/signed",
        "message/sip", "message/sipfrag",
    ]  # fmt: skip


def test_transports_via_list() -> None:
    msg = parse_message(read("transports"))
    assert [v.transport for v in msg.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def test_mpart01_binary_body_is_framed_by_content_length() -> None:
    data = read("mpart01")
    msg = parse_message(data)
    assert msg.content_length == len(msg.body) == 553
    assert b"\x00" in msg.body and data.endswith(msg.body)
    assert msg.content_type == "multipart/mixed"


def test_dblreq_trailing_octets_are_ignored() -> None:
    msg = parse_message(read("dblreq"))
    assert isinstance(msg, Request) and msg.method == "REGISTER" and msg.body == b""
    assert b"INVITE" not in msg.to_bytes()


def test_intmeth_unusual_characters() -> None:
    data = read("intmeth")
    msg = parse_message(data)
    assert isinstance(msg, Request)
    assert msg.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert msg.to is not None and msg.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert msg.from_ is not None and msg.from_.display == "token1~` token2'+_ token3*%!.-"
    assert msg.from_.tag == "_token~1'+`*%!-."
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    ext = msg.header("extensionHeader-!.%*+_`'~")
    assert ext is not None and ext.encode("utf-8", "surrogateescape") in data
    uri = parse_uri(msg.uri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"


def test_escnull_does_not_truncate_at_escaped_nul() -> None:
    msg = parse_message(read("escnull"))
    assert [parse_uri(c.uri).decoded_user for c in msg.contact] == ["\x00", "\x00\x00"]
    assert msg.to is not None and parse_uri(msg.to.uri).decoded_user == "null-\x00-null"


def test_esc02_escaped_header_name_is_not_contact() -> None:
    msg = parse_message(read("esc02"))
    assert [c.uri for c in msg.contact] == [
        "sip:alias1@host1.example.com",
        "sip:alias3@host3.example.com",
    ]
    assert msg.header("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_response_start_lines() -> None:
    unreason = parse_message(read("unreason"))
    assert isinstance(unreason, Response) and unreason.status == 200
    assert unreason.reason.startswith("= 2**3 * 5**2 но")
    noreason = parse_message(read("noreason"))
    assert isinstance(noreason, Response) and (noreason.status, noreason.reason) == (100, "")


def test_lwsdisp_and_unknown_schemes() -> None:
    lwsdisp = parse_message(read("lwsdisp"))
    assert lwsdisp.from_ is not None and lwsdisp.from_.display == "caller"
    unksm2 = parse_message(read("unksm2"))
    assert unksm2.to is not None and unksm2.to.uri == "isbn:2983792873"
    assert [c.uri for c in unksm2.contact] == ["name:John_Smith"]
    novelsc = parse_message(read("novelsc"))
    assert isinstance(novelsc, Request) and novelsc.uri == "soap.beep://192.0.2.103:3002"
    with pytest.raises(ValueError, match="not a sip"):
        parse_uri(novelsc.uri)


@pytest.fixture
def sippy_classes(monkeypatch: pytest.MonkeyPatch) -> tuple[type, type]:
    monkeypatch.setenv("SIPLOG_BEND", "none")
    request = pytest.importorskip("sippy.SipRequest").SipRequest
    response = pytest.importorskip("sippy.SipResponse").SipResponse
    return request, response


# sippy refuses these schemes in the Request-URI or To; it reads "tag = x" (LWS around
# "=", wsinv) as no tag; it mis-frames mpart01's binary body.
SIPPY_CANNOT = {"unkscm", "novelsc", "unksm2", "mpart01"}


@pytest.mark.parametrize("name", [n for n in VALID if n not in SIPPY_CANNOT])
def test_sippy_agrees_on_valid_messages(name: str, sippy_classes: tuple[type, type]) -> None:
    data = read(name)
    ours = parse_message(data)
    sippy_request, sippy_response = sippy_classes
    theirs = (sippy_response if isinstance(ours, Response) else sippy_request)(
        data.decode("utf-8", "surrogateescape")
    )
    if isinstance(ours, Request):
        assert theirs.getMethod() == ours.method
    else:
        assert theirs.getSCode()[0] == ours.status
    assert str(theirs.getHFBody("call-id")) == ours.call_id
    assert tuple(theirs.getHFBody("cseq").getCSeq()) == ours.cseq
    if name != "wsinv":
        assert ours.from_ is not None
        assert theirs.getHFBody("from").getTag() == ours.from_.tag

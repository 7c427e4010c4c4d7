"""RFC 3261 §12 dialogs, §13.2.2.4 ACK for a 2xx and §9.1 CANCEL from sipharness.sip.dialog."""

from __future__ import annotations

import pytest

from sipharness.sip.dialog import Dialog, DialogState, create_cancel
from sipharness.sip.message import Request, Response, build_request, build_response, parse_message

ROOM = "sip:abc-defg-hij@bridge.example.com"


def invite(*, cseq: int = 1, auth: bool = False) -> Request:
    headers = [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-inv-1;rport"),
        ("Route", "<sip:trunk-edge.example.com;lr>"),
        ("Max-Forwards", "70"),
        ("From", '"Caller" <sip:+15550100@trunk.example.com>;tag=from-1'),
        ("To", f"<{ROOM}>"),
        ("Call-ID", "call-1@127.0.0.1"),
        ("CSeq", f"{cseq} INVITE"),
        ("Contact", "<sip:caller@127.0.0.1:5070>"),
    ]
    if auth:
        headers.append(("Authorization", 'Digest username="u", realm="r", response="x"'))
    request = parse_message(build_request("INVITE", ROOM, headers).to_bytes())
    assert isinstance(request, Request)
    return request


def response(
    request: Request,
    status: int,
    *,
    record_route: tuple[str, ...] = (),
    contact: str = "<sip:room@10.0.0.9:5060;transport=udp>",
    to_tag: str = "bridge-1",
) -> Response:
    headers = [("Record-Route", rr) for rr in record_route] + [("Contact", contact)]
    built = build_response(request, status, headers=headers, to_tag=to_tag)
    parsed = parse_message(built.to_bytes())
    assert isinstance(parsed, Response)
    return parsed


PROXIES = ("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>")


def test_uac_dialog_keeps_ids_and_reverses_record_route() -> None:
    inv = invite()
    dialog = Dialog.from_uac(inv, response(inv, 200, record_route=PROXIES))
    assert dialog.id == ("call-1@127.0.0.1", "from-1", "bridge-1")
    assert dialog.state is DialogState.CONFIRMED
    assert dialog.route_set == ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
    assert dialog.remote_target == "sip:room@10.0.0.9:5060;transport=udp"
    assert dialog.local_uri == "sip:+15550100@trunk.example.com"
    assert dialog.remote_uri == ROOM
    assert (dialog.local_cseq, dialog.remote_cseq) == (1, None)
    assert not dialog.secure


def test_bye_goes_to_the_remote_target_along_the_route_set_with_the_next_cseq() -> None:
    inv = invite(cseq=5)
    dialog = Dialog.from_uac(inv, response(inv, 200, record_route=PROXIES))

    bye = dialog.create_request("BYE", headers=[("Reason", "Q.850;cause=16")])

    assert bye.method == "BYE" and bye.uri == "sip:room@10.0.0.9:5060;transport=udp"
    assert bye.header_values("route") == list(reversed(PROXIES))
    assert bye.cseq == (6, "BYE")
    assert bye.from_ is not None and bye.from_.tag == "from-1"
    assert bye.to is not None and bye.to.tag == "bridge-1"
    assert bye.call_id == "call-1@127.0.0.1"
    assert bye.header("reason") == "Q.850;cause=16"
    via = bye.top_via
    assert via is not None and via.sent_by == "127.0.0.1:5070"
    assert via.branch is not None and via.branch.startswith("z9hG4bK")
    assert via.branch != "z9hG4bK-inv-1"
    assert dialog.create_request("INFO").cseq == (7, "INFO")
    reinvite = dialog.create_request("INVITE", body=b"v=0\r\n")
    assert reinvite.cseq == (8, "INVITE") and reinvite.header("contact") is not None


def test_ack_for_2xx_has_a_new_branch_the_invite_cseq_and_its_credentials() -> None:
    inv = invite(cseq=2, auth=True)
    ok = response(inv, 200, record_route=PROXIES)
    dialog = Dialog.from_uac(inv, ok)
    dialog.create_request("INFO")

    ack = dialog.create_ack(inv, ok, b"v=0\r\n", headers=[("Content-Type", "application/sdp")])

    assert ack.method == "ACK" and ack.cseq == (2, "ACK")
    assert ack.uri == dialog.remote_target
    assert ack.header_values("route") == list(reversed(PROXIES))
    assert ack.top_via is not None and ack.top_via.branch != "z9hG4bK-inv-1"
    assert ack.header("authorization") == inv.header("authorization")
    assert ack.body == b"v=0\r\n" and ack.header("content-length") == "5"
    assert dialog.local_cseq == 3, "an ACK does not consume a CSeq number"
    with pytest.raises(ValueError):
        dialog.create_ack(inv, response(inv, 486))


def test_a_given_via_replaces_the_dialogs_whole() -> None:
    inv = invite()
    dialog = Dialog.from_uac(inv, response(inv, 200))
    via = "SIP/2.0/TCP 127.0.0.1:5071;branch=z9hG4bKmine;rport"
    bye = dialog.create_request("BYE", via=via)
    ack = dialog.create_ack(inv, response(inv, 200), via=via)
    assert bye.header_values("via") == ack.header_values("via") == [via]
    assert bye.cseq == (2, "BYE") and ack.cseq == (1, "ACK")


def test_strict_first_route_becomes_the_request_uri() -> None:
    inv = invite()
    strict = ("<sip:p1.example.com;lr>", "<sip:strict.example.com>")
    dialog = Dialog.from_uac(inv, response(inv, 200, record_route=strict))
    bye = dialog.create_request("BYE")
    assert bye.uri == "sip:strict.example.com"
    assert bye.header_values("route") == [
        "<sip:p1.example.com;lr>",
        "<sip:room@10.0.0.9:5060;transport=udp>",
    ]


def test_no_route_set_means_no_route_header() -> None:
    inv = invite()
    dialog = Dialog.from_uac(inv, response(inv, 200))
    bye = dialog.create_request("BYE")
    assert bye.header_values("route") == []
    assert bye.uri == "sip:room@10.0.0.9:5060;transport=udp"


def test_early_dialog_is_confirmed_by_the_2xx_which_sets_routes_and_target() -> None:
    inv = invite()
    ringing = response(inv, 180, record_route=("<sip:early.example.com;lr>",))
    dialog = Dialog.from_uac(inv, ringing)
    assert dialog.state is DialogState.EARLY
    assert dialog.route_set == ["<sip:early.example.com;lr>"]

    ok = response(inv, 200, record_route=PROXIES, contact="<sip:room@10.0.0.10>")
    dialog.update(ok)

    assert dialog.state is DialogState.CONFIRMED
    assert dialog.route_set == list(reversed(PROXIES))
    assert dialog.remote_target == "sip:room@10.0.0.10"
    with pytest.raises(ValueError):
        dialog.update(response(inv, 200, to_tag="other-fork"))


def test_responses_without_a_to_tag_do_not_make_a_dialog() -> None:
    inv = invite()
    trying = parse_message(build_response(inv, 100).to_bytes())
    assert isinstance(trying, Response)
    with pytest.raises(ValueError):
        Dialog.from_uac(inv, trying)
    with pytest.raises(ValueError):
        Dialog.from_uac(inv, response(inv, 404))


def _in_dialog_request(method: str, cseq: int, *, to_tag: str = "from-1") -> Request:
    request = build_request(
        method,
        "sip:caller@127.0.0.1:5070",
        [
            ("Via", "SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK-far"),
            ("From", f"<{ROOM}>;tag=bridge-1"),
            ("To", f'"Caller" <sip:+15550100@trunk.example.com>;tag={to_tag}'),
            ("Call-ID", "call-1@127.0.0.1"),
            ("CSeq", f"{cseq} {method}"),
        ],
    )
    return request


def test_lower_remote_cseq_is_answered_500() -> None:
    inv = invite()
    dialog = Dialog.from_uac(inv, response(inv, 200))
    info = _in_dialog_request("INFO", 10)
    assert dialog.matches_request(info)
    assert not dialog.matches_request(_in_dialog_request("INFO", 11, to_tag="someone-else"))

    assert dialog.receive_request(info) is None
    assert dialog.remote_cseq == 10
    assert dialog.receive_request(_in_dialog_request("OPTIONS", 9)) == 500
    assert dialog.remote_cseq == 10
    assert dialog.receive_request(_in_dialog_request("BYE", 11)) is None
    assert dialog.state is DialogState.TERMINATED


def test_uas_dialog_sends_with_swapped_addresses_and_its_own_cseq_space() -> None:
    plain = invite(cseq=7)
    inv = parse_message(
        plain.add_header("Record-Route", PROXIES[0])
        .add_header("Record-Route", PROXIES[1])
        .to_bytes()
    )
    assert isinstance(inv, Request)
    ok = parse_message(
        build_response(
            inv, 200, headers=[("Contact", "<sip:us@127.0.0.1:5080>")], to_tag="us"
        ).to_bytes()
    )
    assert isinstance(ok, Response)
    dialog = Dialog.from_uas(inv, ok, via="SIP/2.0/UDP 127.0.0.1:5080")

    bye = dialog.create_request("BYE")

    assert dialog.id == ("call-1@127.0.0.1", "us", "from-1")
    assert dialog.remote_cseq == 7 and bye.cseq == (1, "BYE")
    assert bye.uri == "sip:caller@127.0.0.1:5070"
    assert bye.header_values("route") == list(PROXIES)
    assert bye.from_ is not None and bye.from_.tag == "us"
    assert bye.to is not None and bye.to.tag == "from-1"
    assert bye.top_via is not None and bye.top_via.sent_by == "127.0.0.1:5080"


def test_cancel_copies_the_invite_identity_with_method_cancel() -> None:
    inv = invite(cseq=3)
    cancel = create_cancel(inv, headers=[("Reason", 'SIP;cause=487;text="gone"')])
    assert cancel.method == "CANCEL" and cancel.uri == inv.uri
    assert cancel.header_values("via") == [inv.header("via")]
    assert cancel.header_values("route") == inv.header_values("route")
    for name in ("from", "to", "call-id"):
        assert cancel.header(name) == inv.header(name)
    assert cancel.cseq == (3, "CANCEL")
    assert cancel.header("reason") is not None

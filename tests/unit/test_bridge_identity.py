"""Caller identity: X-100ms headers, decoding exactly once, and phone-number masking."""

from __future__ import annotations

import pytest

from sipharness.bridge.identity import CallerIdentity, caller_identity, mask_number, raw_headers

INVITE = (
    "INVITE sip:abc-defg-hij@bridge SIP/2.0\r\n"
    "f: \"Caller\" <sip:+1415555%201234@trunk.example>;tag=1\r\n"
    "{extra}"
    "Content-Length: 0\r\n\r\n"
)


def identity(extra: str = "", **kw: bool) -> CallerIdentity:
    headers = raw_headers(INVITE.format(extra=extra))
    return caller_identity(headers, keep_last=4, mask_char="X", **kw)


@pytest.mark.parametrize(("number", "masked"), [
    ("+1415555 1234", "XXXXXXX1234"), ("+14155551234", "XXXXXXX1234"), ("123", "123"),
    ("anonymous", "anonymous"),
])
def test_mask_number_keeps_the_last_four_digits(number: str, masked: str) -> None:
    assert mask_number(number) == masked


def test_mask_rule_is_configurable() -> None:
    assert mask_number("+44 20 7946 0958", keep_last=2, mask_char="*") == "**********58"


def test_no_display_name_names_the_peer_by_the_masked_from_number() -> None:
    who = identity()
    assert who.user_name == "XXXXXXX1234" and who.number == "+1415555 1234"
    assert who.user_id.startswith("sip-") and len(who.user_id) == 36


def test_headers_match_case_insensitively_and_are_decoded_once() -> None:
    who = identity("x-100MS-display-name: Jos%C3%A9%2520D\r\nX-100MS-USERID: u%2Fx\r\n")
    assert (who.user_name, who.user_id) == ("José%20D", "u/x")


def test_folded_header_values_are_unfolded() -> None:
    who = identity("X-100ms-Display-Name: Ada\r\n  Lovelace\r\n")
    assert who.user_name == "Ada Lovelace"


def test_first_of_duplicated_headers_wins_and_empty_name_falls_back() -> None:
    assert identity("X-100ms-UserID: a\r\nX-100ms-UserID: b\r\n").user_id == "a"
    assert identity("X-100ms-Display-Name: \r\n").user_name == "XXXXXXX1234"


def test_fault_switches_change_the_result() -> None:
    extra = "x-100ms-display-name: A%20B\r\n"
    assert identity(extra, case_sensitive=True).user_name == "XXXXXXX1234"
    assert identity("X-100ms-Display-Name: A%20B\r\n", decode=False).user_name == "A%20B"
    assert identity(mask=False).user_name == "+1415555 1234"


def test_privacy_id_hides_the_number_entirely() -> None:
    assert identity("Privacy: id\r\n").user_name == "Anonymous"
    assert identity("Privacy: id\r\nX-100ms-Display-Name: Bo\r\n").user_name == "Bo"


PAI = 'P-Asserted-Identity: "Alice \\"Trunk\\"" <sip:+44%20207 1234567@trunk.example>\r\n'


def test_a_trusted_p_asserted_identity_names_the_caller() -> None:
    got = identity(PAI, trust_pai=True)
    assert (got.user_name, got.number) == ('Alice "Trunk"', "+44 207 1234567")
    tel = identity("P-Asserted-Identity: <tel:+442071234567>\r\n", trust_pai=True)
    assert tel.user_name == "XXXXXXXX4567"


def test_an_untrusted_p_asserted_identity_is_ignored() -> None:
    got = identity(PAI)
    assert (got.user_name, got.number) == ("XXXXXXX1234", "+1415555 1234")


@pytest.mark.parametrize("privacy", ["Privacy: id\r\n", "Privacy: header; ID\r\n",
                                     "Privacy: none\r\nPrivacy: id\r\n"])
def test_privacy_id_withholds_the_number_and_the_asserted_name(privacy: str) -> None:
    got = identity(PAI + privacy, trust_pai=True)
    assert (got.user_name, got.number) == ("Anonymous", "")


def test_privacy_id_keeps_an_explicit_display_name() -> None:
    got = identity("X-100ms-Display-Name: Bob\r\nPrivacy: id\r\n")
    assert (got.user_name, got.number) == ("Bob", "")

"""``--sip-target`` addresses: the one syntax both runners accept."""

import pytest

from sipharness.target import parse_target_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bridge.example.net", ("bridge.example.net", 5060)),
        ("bridge.example.net:5080", ("bridge.example.net", 5080)),
        ("127.0.0.1:5070", ("127.0.0.1", 5070)),
        ("[::1]:5070", ("::1", 5070)),
        ("[::1]", ("::1", 5060)),
        (" 10.0.0.1:5060 ", ("10.0.0.1", 5060)),
    ],
)
def test_addresses_parse_to_host_and_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_target_address(text) == expected


@pytest.mark.parametrize("text", ["", "host:", "host:port", "::1:5060", "[::1:5060", "h:70000"])
def test_bad_addresses_name_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match=r"HOST:PORT|out of range"):
        parse_target_address(text)

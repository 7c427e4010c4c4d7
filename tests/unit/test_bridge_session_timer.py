"""RFC 4028 session timers as the bridge negotiates them: interval, refresher, 422, no timer,
and how the bridge refreshes when it is the refresher."""

from __future__ import annotations

import pytest

from sipharness.bridge.session_timer import (
    SessionTimer,
    SessionTimerError,
    TooSmall,
    negotiate,
    refresh_method,
)


def headers(*lines: str) -> list[tuple[str, str]]:
    return [(name.strip(), value.strip()) for name, _, value in
            (line.partition(":") for line in lines)]


@pytest.mark.parametrize(("lines", "expected"), [
    (("Supported: timer", "Session-Expires: 1800"), SessionTimer(1800, "uac")),
    (("k: 100rel, timer", "x: 1800;refresher=uac"), SessionTimer(1800, "uac")),
    (("Supported: timer", "Session-Expires: 1800 ; refresher=UAS"), SessionTimer(1800, "uas")),
    (("Require: timer", "Session-Expires: 120", "Min-SE: 90"), SessionTimer(120, "uac")),
    (("Supported: timer", "Session-Expires: 89"), TooSmall(90)),
    (("Session-Expires: 1800",), None),          # the caller cannot refresh: no timer
    (("Supported: timer",), None),               # supported but not asked for
])
def test_negotiation(lines: tuple[str, ...], expected: object) -> None:
    assert negotiate(headers(*lines), 90) == expected


def test_the_2xx_header_and_the_bye_time() -> None:
    timer = SessionTimer(1800, "uac")
    assert (timer.header, timer.require_timer) == ("1800;refresher=uac", True)
    assert timer.bye_after == 1800 - 32
    assert SessionTimer(90, "uac").bye_after == 60
    assert not SessionTimer(90, "uas").require_timer


@pytest.mark.parametrize("line", ["Session-Expires: soon", "Session-Expires: -5",
                                  "Min-SE: x"])
def test_a_malformed_interval_is_an_error(line: str) -> None:
    with pytest.raises(SessionTimerError):
        negotiate(headers("Supported: timer", "Session-Expires: 100", line)
                  if line.startswith("Min") else headers("Supported: timer", line), 90)


@pytest.mark.parametrize(("lines", "method"), [
    (("Allow: INVITE, ACK, CANCEL, BYE, UPDATE",), "UPDATE"),
    (("allow: invite,update",), "UPDATE"),
    (("Allow: INVITE, ACK", "Allow: BYE, UPDATE"), "UPDATE"),   # a list split over fields
    (("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS",), "INVITE"),
    (("Allow: INVITE, UPDATES",), "INVITE"),                    # whole method names only
    ((), "INVITE"),                                             # no Allow: re-INVITE
])
def test_the_bridge_refreshes_with_update_only_when_the_caller_allows_it(
        lines: tuple[str, ...], method: str) -> None:
    assert refresh_method(headers(*lines)) == method

"""RFC 4028 session timers on the UAS side: reading Session-Expires/Min-SE and deciding the answer.

With refresher=uac (the default) the bridge ends the session with BYE when no refresh comes
in time; asked for refresher=uas it refreshes at half the interval, with UPDATE when the
caller's Allow lists it and otherwise with a re-INVITE (RFC 4028 §7.4), and ends the session
with BYE when a refresh gets 408/481 or times out, or the session expires unrefreshed (EXT-01)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sipharness.bridge.identity import header_value

_DELTA = re.compile(r"^\s*(\d{1,10})\s*((?:;.*)?)$")


class SessionTimerError(ValueError):
    """A Session-Expires or Min-SE header that is not ``delta-seconds *(;param)``."""


@dataclass(frozen=True)
class SessionTimer:
    """What the 2xx says: the interval, who refreshes, and whether ``Require: timer`` goes in."""

    expires: int
    refresher: str

    @property
    def header(self) -> str:
        return f"{self.expires};refresher={self.refresher}"

    @property
    def require_timer(self) -> bool:
        return self.refresher == "uac"

    @property
    def bye_after(self) -> float:
        """When the non-refresher gives up: the interval less min(32 s, a third) (§10)."""
        return self.expires - min(32.0, self.expires / 3)


@dataclass(frozen=True)
class TooSmall:
    """The request's interval is below the bridge's minimum: 422 with ``Min-SE: min_se``."""

    min_se: int


def option_tags(headers: list[tuple[str, str]], name: str) -> set[str]:
    """Every option tag in the ``name`` header fields (Supported, Require; compact forms too)."""
    tags: set[str] = set()
    for hname, value in headers:
        folded = hname.lower()
        if folded == name or (name == "supported" and folded == "k"):
            tags |= {v.strip().lower() for v in value.split(",") if v.strip()}
    return tags


def _delta(value: str, what: str) -> tuple[int, str]:
    match = _DELTA.match(value)
    if not match:
        raise SessionTimerError(f"{what} is not delta-seconds: {value[:40]!r}")
    return int(match.group(1)), match.group(2)


def negotiate(headers: list[tuple[str, str]], min_se: int) -> SessionTimer | TooSmall | None:
    """The session timer for a (re-)INVITE or UPDATE, a 422, or None (no timer).

    A timer is used only when the caller supports it (``Supported: timer``) and asks for one
    with Session-Expires; the interval is copied, never raised; refresher=uac unless the
    caller asked for uas. Below ``min_se`` the answer is 422."""
    value = header_value(headers, "session-expires")
    if value is None:
        return None
    expires, params = _delta(value, "Session-Expires")
    requested_min = header_value(headers, "min-se")
    if requested_min is not None:
        _delta(requested_min, "Min-SE")
    if "timer" not in option_tags(headers, "supported") | option_tags(headers, "require"):
        return None
    if expires < min_se:
        return TooSmall(min_se)
    refresher = "uas" if re.search(r";\s*refresher\s*=\s*uas\b", params, re.I) else "uac"
    return SessionTimer(expires, refresher)


def refresh_method(headers: list[tuple[str, str]]) -> str:
    """The method of the bridge's own refreshes: "UPDATE" when an Allow header field of the
    caller lists it, else "INVITE" (no Allow at all included; RFC 4028 §7.4)."""
    allowed = {method.strip().upper() for name, value in headers if name.lower() == "allow"
               for method in value.split(",")}
    return "UPDATE" if "UPDATE" in allowed else "INVITE"

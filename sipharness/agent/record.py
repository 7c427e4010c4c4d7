"""The record of one call: every message sent and received, phase timings, and the outcome."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from sipharness.net.transport import HostPort
from sipharness.report.ladder import LadderEntry
from sipharness.sip.message import Request, Response, SipParseError, parse_message

Direction = Literal["sent", "received"]

Ending = Literal[
    "",  # still running
    "completed",  # answered, then torn down with a BYE that got 200 (or the far end's BYE)
    "answered",  # answered and not (yet) torn down
    "rejected",  # a final non-2xx answer (after any challenge)
    "auth_failed",  # challenged again or refused after our credentials
    "no_challenge",  # 401/407 without a usable challenge, or a challenge and no credentials
    "cancelled",  # we sent CANCEL and the INVITE ended with 487
    "timeout",  # a transaction timed out (Timer B / F) or a wait ran out
    "transport_error",  # could not send (refused, reset, TLS handshake)
    "bye_failed",  # answered, but the BYE got no 2xx
]


@dataclass(slots=True)
class MessageEntry:
    """One message on the wire, as sent or received, with when and where."""

    direction: Direction
    time: float
    wall: float
    local: HostPort
    remote: HostPort
    transport: str
    data: bytes
    parsed: Request | Response | None = None
    error: str | None = None
    repeated: bool = False
    note: str = ""

    @property
    def message(self) -> Request | Response | None:
        """The parsed message (parsed on first use for sent bytes); None if unparseable."""
        if self.parsed is None and self.error is None:
            try:
                self.parsed = parse_message(self.data)
            except SipParseError as exc:
                self.error = str(exc)
        return self.parsed

    @property
    def received(self) -> bool:
        return self.direction == "received"

    @property
    def method(self) -> str | None:
        """Request method, or the CSeq method of a response."""
        msg = self.message
        if isinstance(msg, Request):
            return msg.method
        if msg is not None and msg.cseq is not None:
            return msg.cseq[1].upper()
        return None

    @property
    def status(self) -> int | None:
        """The status code of a response, None for a request."""
        msg = self.message
        return msg.status if isinstance(msg, Response) else None

    @property
    def label(self) -> str:
        """``INVITE`` or ``401 Unauthorized (INVITE)``: what a ladder arrow says."""
        msg = self.message
        if isinstance(msg, Request):
            return msg.method
        if isinstance(msg, Response):
            return f"{msg.status} {msg.reason} ({self.method})".replace("  ", " ")
        return "unparseable"


@dataclass
class Outcome:
    """How the call ended. ``failure`` is one line for a person; empty when all went well."""

    ending: Ending = ""
    answered: bool = False
    status: int | None = None
    reason: str = ""
    failure: str = ""
    challenged: int = 0
    torn_down_by: Literal["", "us", "far end"] = ""

    @property
    def ok(self) -> bool:
        """Answered and torn down cleanly."""
        return self.ending == "completed"


PHASES = {
    "invite_to_100": "first INVITE → 100 Trying",
    "invite_to_401": "first INVITE → 401/407 challenge",
    "auth_invite_to_180": "authenticated INVITE → 180/183",
    "auth_invite_to_200": "authenticated INVITE → 200",
    "invite_to_180": "first INVITE → first 180/183 (post-dial delay to ringing)",
    "invite_to_200": "first INVITE → 200 (post-dial delay)",
    "bye_to_200": "BYE → 200",
}
"""Phase names in ``CallRecord.timings`` (seconds) and what each measures."""


@dataclass
class CallRecord:
    """Everything that happened on one call, in order."""

    call_id: str
    target: str
    transport: str
    entries: list[MessageEntry] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    outcome: Outcome = field(default_factory=Outcome)
    notes: list[tuple[float, str]] = field(default_factory=list)

    def __iter__(self) -> Iterator[MessageEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def select(self, predicate: Callable[[MessageEntry], bool]) -> list[MessageEntry]:
        """Entries for which ``predicate`` is true, in order."""
        return [e for e in self.entries if predicate(e)]

    def sent(self, method: str | None = None) -> list[MessageEntry]:
        """Requests and responses we sent; only requests of ``method`` when given."""
        return [e for e in self.entries if e.direction == "sent"
                and (method is None or (isinstance(e.message, Request)
                                        and e.message.method == method.upper()))]  # fmt: skip

    def received(self, status: int | None = None, method: str | None = None) -> list[MessageEntry]:
        """Messages we received; filtered by response ``status`` and/or CSeq ``method``."""
        return [e for e in self.entries if e.received
                and (status is None or e.status == status)
                and (method is None or e.method == method.upper())]  # fmt: skip

    def ladder(self, local_name: str = "sipharness", remote_name: str = "") -> list[LadderEntry]:
        """Ladder entries (redaction happens in the renderer) with repeats noted."""
        out: list[LadderEntry] = []
        for e in self.entries:
            far = remote_name or f"{e.remote[0]}:{e.remote[1]}"
            src, dst = (local_name, far) if e.direction == "sent" else (far, local_name)
            note = e.note or ("repeated" if e.repeated else "")
            out.append(LadderEntry(e.time, src, dst, e.label, e.data, note))
        return out

    def phase(self, name: str, value: float) -> None:
        """Set a phase timing once (the first occurrence counts)."""
        self.timings.setdefault(name, value)

"""The scenario model: frozen dataclasses for a loaded scenario file and each kind of step.

Times are float seconds. Text that may hold ``${...}`` is a Template, resolved at run time
against the Bindings of one Plan (see plan.py). Every step keeps its index and source line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from sipharness.scenario.variables import Bindings, Template

T1, T2, T4 = 0.5, 4.0, 5.0

_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*(ms|s)|(?:(\d+(?:\.\d+)?)\s*\*\s*)?T([124]))\s*$")


def parse_duration(value: int | float | str) -> float:
    """Milliseconds (number) or ``"200ms"``, ``"1.5s"``, ``"T1"``, ``"64*T1"`` -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return float(value) / 1000.0
    m = _DURATION.match(value)
    if not m:
        raise ValueError(f"not a duration: {value!r}")
    if m.group(1) is not None:
        number = float(m.group(1))
        return number / 1000.0 if m.group(2) == "ms" else number
    timer = {"1": T1, "2": T2, "4": T4}[m.group(4)]
    return float(m.group(3) or 1) * timer


@dataclass(frozen=True)
class HeaderLine:
    """A header field sent exactly as written; ``name`` is None for a raw line in ``value``."""

    name: Template | None
    value: Template


@dataclass(frozen=True)
class SdpMedia:
    """One m-line of an offer."""

    type: str = "audio"
    codecs: tuple[str, ...] = ("PCMU", "PCMA", "telephone-event")
    direction: str = "sendrecv"
    port: int | None = None
    crypto: bool = False
    ptime: int | None = None


@dataclass(frozen=True)
class SdpOffer:
    """The SDP offer to send; DEFAULT_OFFER when a step says nothing."""

    media: tuple[SdpMedia, ...] = (SdpMedia(),)
    address: Template | None = None


DEFAULT_OFFER = SdpOffer()
# A request's SDP: an offer, "none" (no body: delayed offer), or "same" (the previous offer).
SdpSpec = SdpOffer | Literal["none", "same"]


@dataclass(frozen=True)
class Retransmit:
    """Resend the same bytes ``count`` times on T1 doubling (capped at T2), or ``at`` offsets."""

    count: int | None = None
    at: tuple[float, ...] = ()

    def offsets(self) -> tuple[float, ...]:
        """Seconds after the first send at which to resend."""
        if self.at:
            return self.at
        out, interval, t = [], T1, 0.0
        for _ in range(self.count or 0):
            t += interval
            out.append(t)
            interval = min(2 * interval, T2)
        return tuple(out)


@dataclass(frozen=True)
class HeaderRule:
    """What a header of a received message must be: present/absent, equal, match, contain."""

    name: str
    present: bool | None = None
    equals: Template | None = None
    matches: Template | None = None
    contains: Template | None = None
    count: int | None = None


@dataclass(frozen=True)
class ToTagRule:
    """``present``, ``absent``, or ``same_as``/``differs_from`` the response of step ``step``."""

    rule: Literal["present", "absent", "same_as", "differs_from"]
    step: str | None = None


@dataclass(frozen=True)
class SdpRules:
    """Rules on the SDP answer in a response (None: not checked)."""

    present: bool | None = None
    valid: bool | None = None
    codec_from_offer: bool | None = None
    codec: str | None = None
    m_lines: int | Literal["same_as_offer"] | None = None
    direction: str | None = None
    crypto: bool | None = None


@dataclass(frozen=True)
class CountRule:
    """How many retransmissions are seen while watching for ``during`` seconds."""

    count: int | None = None
    at_least: int | None = None
    at_most: int | None = None
    during: float | None = None

    def accepts(self, seen: int) -> bool:
        return (
            (self.count is None or seen == self.count)
            and (self.at_least is None or seen >= self.at_least)
            and (self.at_most is None or seen <= self.at_most)
        )


@dataclass(frozen=True)
class SaveRule:
    """Save into ``${saved.NAME}`` a header value (or a ``:pseudo`` field); ``regex``: group 1."""

    name: str
    header: str
    regex: str | None = None


@dataclass(frozen=True)
class FieldRule:
    """A field (dotted path) of a webhook body or roster peer: equals, matches, or present."""

    path: str
    equals: Any = None
    matches: Template | None = None
    present: bool | None = None


@dataclass(frozen=True, kw_only=True)
class Step:
    """One step of a call flow. ``kind`` is the YAML key; ``index`` its place in steps:."""

    kind: ClassVar[str] = ""
    index: int
    line: int
    id: str | None = None
    note: str | None = None

    @property
    def label(self) -> str:
        """``steps[3].expect`` (with the step id when it has one)."""
        base = f"steps[{self.index}].{self.kind}"
        return f"{base} ({self.id})" if self.id else base


@dataclass(frozen=True, kw_only=True)
class Send(Step):
    """Send a new request outside a dialog, built from fields or given as ``raw`` bytes.

    Generated headers (Via, From, To, Call-ID, CSeq, Max-Forwards, Contact, Content-Type,
    Content-Length) come first; a ``headers`` entry with the same name (case-insensitive,
    compact-aware) replaces the generated one in its place, spelled as the scenario wrote it;
    the rest follow in order. ``only_headers`` sends just ``headers``. INVITE carries
    DEFAULT_OFFER unless ``sdp``/``body`` say otherwise.
    """

    kind: ClassVar[str] = "send"
    method: str | None = None
    uri: Template | None = None
    headers: tuple[HeaderLine, ...] = ()
    only_headers: bool = False
    sdp: SdpSpec | None = None
    body: Template | None = None
    content_type: str | None = None
    raw: Template | None = None
    transport: str | None = None
    retransmit: Retransmit | None = None

    def raw_bytes(self, bindings: Bindings) -> bytes:
        """The ``raw`` message with variables resolved and every line ending in CRLF."""
        if self.raw is None:
            raise ValueError(f"{self.label} has no raw message")
        text = self.raw.render(bindings).replace("\r\n", "\n")
        return text.replace("\n", "\r\n").encode("utf-8")


@dataclass(frozen=True, kw_only=True)
class AnswerChallenge(Step):
    """Resend the last challenged request with credentials: ``correct`` or a wrong variant.

    ``credentials`` renders to ``correct`` or a key of wrong_variants() (it may be a
    ``${matrix.AXIS}`` whose values were all checked at load time).
    """

    kind: ClassVar[str] = "answer_challenge"
    credentials: Template
    username: Template | None = None
    password: Template | None = None
    algorithm: str | None = None


@dataclass(frozen=True, kw_only=True)
class Ack(Step):
    """ACK the current INVITE's final response now; ``withhold``: do not ACK it until a later
    ``ack`` step (if any) — not even a non-2xx, which is otherwise ACKed automatically."""

    kind: ClassVar[str] = "ack"
    withhold: bool = False
    headers: tuple[HeaderLine, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Cancel(Step):
    """CANCEL the current INVITE."""

    kind: ClassVar[str] = "cancel"
    headers: tuple[HeaderLine, ...] = ()
    only_headers: bool = False
    reason: Template | None = None


@dataclass(frozen=True, kw_only=True)
class Bye(Step):
    """BYE in the current dialog, or (``dialog: unknown``) with a To-tag of no dialog."""

    kind: ClassVar[str] = "bye"
    headers: tuple[HeaderLine, ...] = ()
    only_headers: bool = False
    dialog: Literal["current", "unknown"] = "current"
    reason: Template | None = None


@dataclass(frozen=True, kw_only=True)
class Reinvite(Step):
    """re-INVITE in the current dialog; ``sdp`` defaults to a new version of the last offer."""

    kind: ClassVar[str] = "reinvite"
    headers: tuple[HeaderLine, ...] = ()
    only_headers: bool = False
    sdp: SdpSpec | None = None
    body: Template | None = None
    content_type: str | None = None


@dataclass(frozen=True, kw_only=True)
class Options(Step):
    """OPTIONS in the current dialog or outside it."""

    kind: ClassVar[str] = "options"
    headers: tuple[HeaderLine, ...] = ()
    only_headers: bool = False
    in_dialog: bool = False
    uri: Template | None = None


@dataclass(frozen=True, kw_only=True)
class Pause(Step):
    """Do nothing for ``duration`` seconds (the transaction layer keeps running)."""

    kind: ClassVar[str] = "pause"
    duration: float


@dataclass(frozen=True, kw_only=True)
class Expect(Step):
    """The next response to request step ``of`` (default: the latest request) must match.

    1xx responses are skipped unless a listed status is 1xx or ``provisional`` is true.
    ``within`` counts from the first send of that request.
    """

    kind: ClassVar[str] = "expect"
    statuses: tuple[int | str, ...]
    of: str | None = None
    within: float | None = None
    provisional: bool = False
    reason: Template | None = None
    headers: tuple[HeaderRule, ...] = ()
    to_tag: ToTagRule | None = None
    sdp: SdpRules | None = None
    retransmissions: CountRule | None = None
    save: tuple[SaveRule, ...] = ()

    def accepts(self, status: int) -> bool:
        """True when ``status`` is one of the listed statuses or classes (``4xx``)."""
        return any(
            status == s if isinstance(s, int) else str(status)[0] == s[0] for s in self.statuses
        )

    @property
    def skips_provisionals(self) -> bool:
        return not self.provisional and not any(
            (s < 200) if isinstance(s, int) else s == "1xx" for s in self.statuses
        )


@dataclass(frozen=True, kw_only=True)
class ExpectSilence(Step):
    """No SIP message arrives on this call for ``duration`` seconds."""

    kind: ClassVar[str] = "expect_silence"
    duration: float


@dataclass(frozen=True, kw_only=True)
class ExpectRequest(Step):
    """The bridge sends a request (``BYE``, re-``INVITE``, ...) and we answer ``answer``."""

    kind: ClassVar[str] = "expect_request"
    method: str
    within: float | None = None
    headers: tuple[HeaderRule, ...] = ()
    answer: int = 200
    answer_headers: tuple[HeaderLine, ...] = ()
    save: tuple[SaveRule, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ExpectWebhook(Step):
    """A webhook of ``type`` with ``fields`` arrives ``within`` — or none for ``none_within``."""

    kind: ClassVar[str] = "expect_webhook"
    type: str
    fields: tuple[FieldRule, ...] = ()
    within: float | None = None
    none_within: float | None = None
    count: int | None = None
    save: tuple[SaveRule, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ExpectRoster(Step):
    """The room roster shows (``present``) or no longer shows a peer matching ``peer``."""

    kind: ClassVar[str] = "expect_roster"
    present: bool
    peer: tuple[FieldRule, ...] = ()
    within: float | None = None


@dataclass(frozen=True, kw_only=True)
class Media(Step):
    """Media actions (send_rtp, expect_rtp, expect_no_rtp, dtmf), validated, run later."""

    kind: ClassVar[str] = "media"
    actions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


STEP_KINDS: dict[str, type[Step]] = {
    cls.kind: cls
    for cls in (
        Send,
        AnswerChallenge,
        Ack,
        Cancel,
        Bye,
        Reinvite,
        Options,
        Pause,
        Expect,
        ExpectSilence,
        ExpectRequest,
        ExpectWebhook,
        ExpectRoster,
        Media,
    )
}
REQUEST_KINDS = frozenset({"send", "answer_challenge", "cancel", "bye", "reinvite", "options"})


@dataclass(frozen=True)
class PacketCheck:
    """A wire assertion of the ``packets:`` section (run by sipharness.capture)."""

    kind: str
    params: Any
    index: int
    line: int


@dataclass(frozen=True)
class LoadSettings:
    """How the load generator uses this scenario."""

    weight: float = 1.0
    think_time: float | None = None


@dataclass(frozen=True)
class Scenario:
    """One scenario file, validated. ``source_lines`` are the file's lines for reports."""

    path: str
    title: str
    description: str
    checks: tuple[str, ...]
    tags: tuple[str, ...]
    severity: str
    requires: tuple[str, ...]
    transport: str
    variables: Mapping[str, Template]
    matrix: Mapping[str, tuple[str, ...]]
    steps: tuple[Step, ...]
    packets: tuple[PacketCheck, ...] = ()
    load: LoadSettings = LoadSettings()
    source_lines: tuple[str, ...] = ()

"""SDP session descriptions (RFC 4566) and the RFC 3264 offer/answer rules the harness checks.

A ``SessionDescription`` keeps its session-level lines and each media section's lines in
order, so ``to_bytes()`` writes back what was parsed; parsed views (ports, formats, rtpmap,
fmtp, direction, ptime, connection) are read from those lines. ``make_offer`` and
``make_answer`` build descriptions; ``check_answer`` lists RFC 3264 problems of an answer in
plain words (empty when fine). Malformed SDP raises ``SipParseError`` with the line number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sipharness.sip.grammar import SipParseError
from sipharness.sip.identifiers import random_below

__all__ = [
    "DIRECTIONS",
    "Codec",
    "MediaDescription",
    "NoCommonCodec",
    "RtpMap",
    "SessionDescription",
    "check_answer",
    "make_answer",
    "make_offer",
]

_PORT_RE = re.compile(r"[0-9]{1,5}(?:/[0-9]{1,5})?")
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_MIRROR = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}
_ALLOWED_ANSWER = {
    "sendrecv": set(DIRECTIONS),
    "sendonly": {"recvonly", "inactive"},
    "recvonly": {"sendonly", "inactive"},
    "inactive": {"inactive"},
}


@dataclass(frozen=True)
class RtpMap:
    """``a=rtpmap:<pt> <encoding>/<clock_rate>[/<channels>]``."""

    encoding: str
    clock_rate: int
    channels: int | None = None

    def __str__(self) -> str:
        tail = f"/{self.channels}" if self.channels is not None else ""
        return f"{self.encoding}/{self.clock_rate}{tail}"


STATIC_PAYLOAD_TYPES: dict[str, RtpMap] = {
    "0": RtpMap("PCMU", 8000),
    "3": RtpMap("GSM", 8000),
    "4": RtpMap("G723", 8000),
    "8": RtpMap("PCMA", 8000),
    "9": RtpMap("G722", 8000),
    "13": RtpMap("CN", 8000),
    "18": RtpMap("G729", 8000),
}
"""RFC 3551 static audio payload types (used when an offer omits their rtpmap)."""


@dataclass(frozen=True)
class Codec:
    """A codec to offer: name, payload type (static or chosen dynamic), rtpmap, fmtp."""

    name: str
    payload_type: int
    clock_rate: int
    channels: int | None = None
    fmtp: str | None = None

    @property
    def rtpmap(self) -> RtpMap:
        return RtpMap(self.name, self.clock_rate, self.channels)


KNOWN_CODECS: dict[str, Codec] = {
    "pcmu": Codec("PCMU", 0, 8000),
    "pcma": Codec("PCMA", 8, 8000),
    "g722": Codec("G722", 9, 8000),
    "g729": Codec("G729", 18, 8000, fmtp="annexb=no"),
    "opus": Codec("opus", 111, 48000, 2, "minptime=10;useinbandfec=1"),
    "telephone-event": Codec("telephone-event", 101, 8000, fmtp="0-16"),
}
"""Codecs ``make_offer`` knows by name; opus and telephone-event get dynamic types 111/101."""


class NoCommonCodec(ValueError):
    """``make_answer`` found no stream it could accept (a UAS answers 488)."""


def _split_lines(text: str) -> list[tuple[int, str, str]]:
    out: list[tuple[int, str, str]] = []
    for number, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        if not line:
            continue
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise SipParseError(f"SDP line {line[:30]!r} is not '<letter>=<value>'", number)
        out.append((number, line[0], line[2:]))
    return out


@dataclass
class MediaDescription:
    """One media section: its ``m=`` line first, then its i/c/b/k/a lines in order."""

    lines: list[tuple[str, str]]

    @classmethod
    def build(
        cls, media: str, port: int, proto: str, formats: Iterable[str | int],
        lines: Iterable[tuple[str, str]] = (),
    ) -> MediaDescription:  # fmt: skip
        """A section from its m-line fields and further ``(type, value)`` lines."""
        m_value = f"{media} {port} {proto} {' '.join(str(f) for f in formats)}"
        return cls([("m", m_value), *lines])

    @property
    def _m(self) -> list[str]:
        return self.lines[0][1].split()

    @property
    def media(self) -> str:
        return self._m[0]

    @property
    def port(self) -> int:
        return int(self._m[1].split("/")[0])

    @property
    def port_count(self) -> int | None:
        _, slash, count = self._m[1].partition("/")
        return int(count) if slash else None

    @property
    def proto(self) -> str:
        return self._m[2]

    @property
    def formats(self) -> list[str]:
        return self._m[3:]

    @property
    def attributes(self) -> list[tuple[str, str | None]]:
        """Every ``a=`` line as (name, value or None), in order."""
        return _attributes(self.lines)

    def attribute(self, name: str) -> str | None:
        """The first value of attribute ``name`` (``""`` for a flag), or None."""
        for attr, value in self.attributes:
            if attr == name:
                return "" if value is None else value
        return None

    @property
    def rtpmap(self) -> dict[str, RtpMap]:
        """Payload type → RtpMap from ``a=rtpmap`` lines, static types filled in."""
        out = {pt: STATIC_PAYLOAD_TYPES[pt] for pt in self.formats if pt in STATIC_PAYLOAD_TYPES}
        for name, value in self.attributes:
            if name != "rtpmap" or value is None:
                continue
            pt, _, spec = value.partition(" ")
            parts = spec.strip().split("/")
            if len(parts) >= 2 and parts[1].isdigit():
                channels = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None
                out[pt] = RtpMap(parts[0], int(parts[1]), channels)
        return out

    @property
    def fmtp(self) -> dict[str, str]:
        """Payload type → format parameters from ``a=fmtp`` lines."""
        out: dict[str, str] = {}
        for name, value in self.attributes:
            if name == "fmtp" and value is not None:
                pt, _, params = value.partition(" ")
                out[pt] = params.strip()
        return out

    def codec_names(self) -> list[str]:
        """Encoding names of the formats in m-line order (the payload type when unknown)."""
        rtpmap = self.rtpmap
        return [rtpmap[pt].encoding if pt in rtpmap else pt for pt in self.formats]

    @property
    def direction(self) -> str | None:
        """The media-level direction attribute, or None (see SessionDescription.direction)."""
        return _direction_of(self.attributes)

    @property
    def ptime(self) -> int | None:
        value = self.attribute("ptime")
        return int(value) if value and value.isdigit() else None

    @property
    def connection(self) -> str | None:
        """The media-level ``c=`` value, or None."""
        return next((v for k, v in self.lines if k == "c"), None)


def _attributes(lines: Iterable[tuple[str, str]]) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for kind, value in lines:
        if kind == "a":
            name, colon, rest = value.partition(":")
            out.append((name, rest if colon else None))
    return out


def _direction_of(attributes: Iterable[tuple[str, str | None]]) -> str | None:
    return next((name for name, _ in attributes if name in DIRECTIONS), None)


@dataclass
class SessionDescription:
    """An SDP body: session-level lines (v, o, s, c, t, a...) and media sections."""

    lines: list[tuple[str, str]]
    media: list[MediaDescription] = field(default_factory=list)
    eol: str = "\r\n"

    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        """Parse SDP text; SipParseError (with the line number) when it is not SDP."""
        text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
        lines = _split_lines(text)
        if not lines or lines[0][1:] != ("v", "0"):
            raise SipParseError("SDP does not start with 'v=0'", lines[0][0] if lines else 1)
        eol = "\n" if "\n" in text and "\r\n" not in text else "\r\n"
        sdp = cls([], [], eol)
        for number, kind, value in lines:
            if kind == "m":
                parts = value.split()
                if len(parts) < 4 or not _PORT_RE.fullmatch(parts[1]):
                    raise SipParseError(
                        f"m-line {value!r} is not 'media port proto fmt...'", number
                    )
                sdp.media.append(MediaDescription([(kind, value)]))
            elif sdp.media:
                sdp.media[-1].lines.append((kind, value))
            else:
                sdp.lines.append((kind, value))
        for kind in ("o", "s", "t"):
            if sdp.value(kind) is None:
                raise SipParseError(f"SDP has no {kind}= line")
        return sdp

    def to_bytes(self) -> bytes:
        out = [f"{k}={v}{self.eol}" for k, v in self.lines]
        for m in self.media:
            out.extend(f"{k}={v}{self.eol}" for k, v in m.lines)
        return "".join(out).encode("utf-8", "surrogateescape")

    def __str__(self) -> str:
        return self.to_bytes().decode("utf-8", "surrogateescape")

    def value(self, kind: str) -> str | None:
        """The first session-level line of this type (``"o"``, ``"c"``...), or None."""
        return next((v for k, v in self.lines if k == kind), None)

    @property
    def origin(self) -> list[str]:
        """The o= fields: username, sess-id, sess-version, nettype, addrtype, address."""
        return (self.value("o") or "").split()

    @property
    def connection(self) -> str | None:
        """The session-level ``c=`` value, or None."""
        return self.value("c")

    @property
    def attributes(self) -> list[tuple[str, str | None]]:
        """Session-level ``a=`` lines as (name, value or None)."""
        return _attributes(self.lines)

    def direction(self, media: MediaDescription) -> str:
        """Effective direction of a media section: media level, then session, else sendrecv."""
        return media.direction or _direction_of(self.attributes) or "sendrecv"

    def connection_address(self, media: MediaDescription) -> str | None:
        """Effective connection address (media-level c= first, then session-level)."""
        value = media.connection or self.connection
        parts = value.split() if value else []
        return parts[2].split("/")[0] if len(parts) >= 3 else None


def _connection(address: str) -> str:
    return f"IN {'IP6' if ':' in address else 'IP4'} {address}"


def _codec(item: str | Codec) -> Codec:
    if isinstance(item, Codec):
        return item
    try:
        return KNOWN_CODECS[item.lower()]
    except KeyError:
        raise ValueError(f"unknown codec {item!r}; pass a Codec") from None


def _codec_lines(codec: Codec) -> list[tuple[str, str]]:
    lines = [("a", f"rtpmap:{codec.payload_type} {codec.rtpmap}")]
    if codec.fmtp:
        lines.append(("a", f"fmtp:{codec.payload_type} {codec.fmtp}"))
    return lines


def make_offer(
    address: str,
    port: int,
    codecs: Sequence[str | Codec] = ("PCMU", "PCMA", "telephone-event"),
    direction: str = "sendrecv",
    ptime: int | None = 20,
    session_id: int | None = None,
) -> SessionDescription:
    """An audio offer (RTP/AVP) from ``address``:``port`` with ``codecs`` in preference order.

    ``session_id`` (also the o= version) is random when None.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}")
    chosen = [_codec(c) for c in codecs]
    if not chosen:
        raise ValueError("an offer needs at least one codec")
    sid = random_below(2**31) if session_id is None else session_id
    media_lines: list[tuple[str, str]] = []
    for codec in chosen:
        media_lines += _codec_lines(codec)
    if ptime is not None:
        media_lines.append(("a", f"ptime:{ptime}"))
    media_lines.append(("a", direction))
    media = MediaDescription.build(
        "audio", port, "RTP/AVP", [c.payload_type for c in chosen], media_lines
    )
    session = [
        ("v", "0"),
        ("o", f"- {sid} {sid} {_connection(address)}"),
        ("s", "-"),
        ("c", _connection(address)),
        ("t", "0 0"),
    ]
    return SessionDescription(session, [media])


def make_answer(
    offer: SessionDescription,
    address: str,
    port: int,
    supported: Sequence[str],
    *,
    direction: str | None = None,
    session_id: int | None = None,
) -> SessionDescription:
    """An RFC 3264 answer: one m-line per offered m-line, in order.

    An audio RTP stream is accepted with the offered payload types of the ``supported``
    codec names (offer order); others, and streams offered with port 0, get port 0. The
    direction mirrors the offer's (``direction`` may narrow it, e.g. to ``inactive``).
    Raises NoCommonCodec when no stream can be accepted.
    """
    wanted = {name.lower() for name in supported}
    sid = random_below(2**31) if session_id is None else session_id
    answer = SessionDescription(
        [
            ("v", "0"),
            ("o", f"- {sid} {sid} {_connection(address)}"),
            ("s", "-"),
            ("c", _connection(address)),
            ("t", offer.value("t") or "0 0"),
        ],
        [],
        offer.eol,
    )
    accepted = 0
    for m in offer.media:
        rtpmap, fmtp = m.rtpmap, m.fmtp
        chosen = [pt for pt in m.formats if pt in rtpmap and rtpmap[pt].encoding.lower() in wanted]
        audio = [pt for pt in chosen if rtpmap[pt].encoding.lower() != "telephone-event"]
        if m.port == 0 or m.media != "audio" or "RTP/" not in m.proto or not audio:
            answer.media.append(MediaDescription.build(m.media, 0, m.proto, m.formats[:1]))
            continue
        accepted += 1
        lines: list[tuple[str, str]] = []
        for pt in chosen:
            lines.append(("a", f"rtpmap:{pt} {rtpmap[pt]}"))
            if pt in fmtp:
                lines.append(("a", f"fmtp:{pt} {fmtp[pt]}"))
        if m.ptime is not None:
            lines.append(("a", f"ptime:{m.ptime}"))
        mirrored = _MIRROR[offer.direction(m)]
        if direction is not None:
            if direction not in _ALLOWED_ANSWER[offer.direction(m)]:
                raise ValueError(f"{direction} cannot answer {offer.direction(m)}")
            mirrored = direction
        lines.append(("a", mirrored))
        answer.media.append(MediaDescription.build(m.media, port, m.proto, chosen, lines))
    if not accepted:
        raise NoCommonCodec(f"no offered stream has a codec among {sorted(wanted)}")
    return answer


def check_answer(offer: SessionDescription, answer: SessionDescription) -> list[str]:
    """RFC 3264 problems of ``answer`` to ``offer``, in plain words; empty when fine."""
    problems: list[str] = []
    if answer.value("t") != offer.value("t"):
        problems.append(f"t= is {answer.value('t')!r}, the offer's is {offer.value('t')!r}")
    if len(answer.origin) != 6:
        problems.append(f"o= line {answer.value('o')!r} does not have six fields")
    if len(answer.media) != len(offer.media):
        problems.append(f"answer has {len(answer.media)} m-lines, the offer has {len(offer.media)}")
    for index, (o, a) in enumerate(zip(offer.media, answer.media, strict=False), start=1):
        problems += [f"m-line {index}: {p}" for p in _check_media(offer, o, answer, a)]
    return problems


def _check_media(
    offer: SessionDescription, o: MediaDescription, answer: SessionDescription,
    a: MediaDescription,
) -> list[str]:  # fmt: skip
    problems: list[str] = []
    if a.media != o.media:
        problems.append(f"media is {a.media}, the offer's is {o.media} (order changed?)")
    if a.proto != o.proto:
        problems.append(f"transport is {a.proto}, the offer's is {o.proto}")
    if a.port == 0:
        return problems
    if o.port == 0:
        problems.append("stream refused in the offer (port 0) is accepted in the answer")
    if not a.formats:
        problems.append("accepted stream lists no formats")
    offered, answered = o.rtpmap, a.rtpmap
    offered_names = {v.encoding.lower(): pt for pt, v in offered.items() if pt in o.formats}
    for pt in a.formats:
        codec = answered.get(pt)
        if codec is None and pt.isdigit() and int(pt) >= 96:
            problems.append(f"dynamic payload type {pt} has no a=rtpmap")
            codec = offered.get(pt) if pt in o.formats else None
            if codec is not None:
                answered[pt] = codec
        name = codec.encoding if codec else None
        if pt not in o.formats:
            if name and name.lower() in offered_names:
                problems.append(
                    f"{name} answered as payload type {pt}; the offer used "
                    f"{offered_names[name.lower()]}"
                )
            else:
                problems.append(f"codec {name or pt} (payload type {pt}) was not in the offer")
        elif name and pt in offered and offered[pt].encoding.lower() != name.lower():
            problems.append(
                f"payload type {pt} is {name} in the answer but {offered[pt].encoding} in the offer"
            )
    if (
        o.media == "audio"
        and a.formats
        and all(
            (answered.get(pt) or RtpMap(pt, 0)).encoding.lower() == "telephone-event"
            for pt in a.formats
        )
    ):
        problems.append("accepted audio stream has only telephone-event, no audio codec")
    if answer.connection_address(a) is None:
        problems.append("no c= line (media or session level)")
    want, got = offer.direction(o), answer.direction(a)
    if got not in _ALLOWED_ANSWER[want]:
        allowed = " or ".join(sorted(_ALLOWED_ANSWER[want]))
        problems.append(f"offer is {want}, answer is {got} (must be {allowed})")
    return problems

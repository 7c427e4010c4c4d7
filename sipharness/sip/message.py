"""Lossless SIP messages: parse bytes, build requests/responses, read header views.

A parsed message keeps every byte it was parsed from: ``to_bytes()`` returns the start line,
header fields (folding, case, compact names, odd whitespace) and body exactly as received.
Parsed views (``call_id``, ``cseq``, ``vias``, ``from_``, ``to``, ``contact``...) are computed
lazily from the header values and never rewrite the raw bytes; a view of a malformed field
raises SipParseError naming the field's line. Treat messages as immutable:
``replace_header``/``add_header``/``remove_header``/``with_body`` return new messages.

Beyond docs/architecture.md this module offers: ``Message.validate()`` (RFC 3261 checks a UAS
makes before answering, raising SipParseError), ``Message.with_body()``, ``Message.route``,
``record_route``, ``max_forwards``, ``content_length``, ``content_type``, ``top_via``,
``Header.line``, ``Header.eol``, ``Via.protocol``/``sent_by``, ``NameAddr.__str__``,
``Message.header_fields()``, ``Header.build()``/``from_raw()``, ``canonical_name()``,
``split_host_port()``, ``REASON_PHRASES``, ``COMPACT_FORMS``, ``LIST_HEADERS``,
``new_branch()``, ``new_tag()``, ``new_call_id(host)``, ``StreamParser(max_message_size=...)``
and ``StreamParser.buffered``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Self, TypeVar

from sipharness.sip.grammar import (
    WSP,
    SipParseError,
    format_params,
    is_token,
    parse_params,
    quote,
    quoted_end,
    split_outside,
    unquote,
)
from sipharness.sip.identifiers import new_branch, new_call_id, new_tag
from sipharness.sip.uri import SipURI

__all__ = [
    "COMPACT_FORMS",
    "LIST_HEADERS",
    "REASON_PHRASES",
    "Header",
    "Message",
    "NameAddr",
    "Request",
    "Response",
    "SipParseError",
    "StreamParser",
    "Via",
    "build_request",
    "build_response",
    "new_branch",
    "new_call_id",
    "new_tag",
    "new_via",
    "parse_message",
]

COMPACT_FORMS: dict[str, str] = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}
"""Registered compact header names (RFC 3261 §7.3.3 and the IANA SIP header registry)."""

LIST_HEADERS: frozenset[str] = frozenset(
    {
        "accept", "accept-contact", "accept-encoding", "accept-language",
        "accept-resource-priority", "alert-info", "allow", "allow-events", "call-info",
        "contact", "content-encoding", "content-language", "diversion", "error-info",
        "history-info", "in-reply-to", "p-asserted-identity", "p-associated-uri",
        "p-preferred-identity", "path", "proxy-require", "reason", "record-route",
        "reject-contact", "request-disposition", "require", "resource-priority", "route",
        "security-client", "security-server", "security-verify", "service-route",
        "supported", "unsupported", "via", "warning",
    }
)  # fmt: skip
"""Header fields defined as comma-separated lists; ``header_values`` splits only these.

Others (Authorization, WWW-Authenticate, Date, Subject, X- headers...) may contain commas
inside one value and are returned one value per field line.
"""

SINGLE_HEADERS = ("call-id", "from", "to", "cseq", "max-forwards", "content-length")

REASON_PHRASES: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated", 200: "OK", 202: "Accepted",
    204: "No Notification", 300: "Multiple Choices", 301: "Moved Permanently",
    302: "Moved Temporarily", 305: "Use Proxy", 380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    412: "Conditional Request Failed", 413: "Request Entity Too Large",
    414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 417: "Unknown Resource-Priority", 420: "Bad Extension",
    421: "Extension Required", 422: "Session Interval Too Small", 423: "Interval Too Brief",
    428: "Use Identity Header", 429: "Provide Referrer Identity", 433: "Anonymity Disallowed",
    436: "Bad Identity-Info", 437: "Unsupported Certificate", 438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support", 470: "Consent Needed",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete",
    485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending",
    493: "Undecipherable", 494: "Security Agreement Required",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 580: "Precondition Failure", 600: "Busy Everywhere",
    603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
    607: "Unwanted",
}  # fmt: skip

_HEADER_END = re.compile(rb"\n\r?\n")
_VERSION_RE = re.compile(r"[Ss][Ii][Pp]/[0-9]+\.[0-9]+")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*:")
_CRLF = b"\r\n"
_PLAIN_VIA = re.compile(r"SIP/2\.0/(?P<transport>[A-Za-z]+) (?P<host>[A-Za-z0-9.\-]+)"
                        r"(?::(?P<port>[0-9]{1,5}))?(?P<params>;.*)?", re.DOTALL)
"""The common Via (``SIP/2.0/UDP host:port;...``, no LWS, no IPv6), parsed without the
general path; anything else takes the general path."""
_BAD_HOST_CHAR = re.compile(r'[ \t<>"@;,?\[\]]')
_BAD_BRACKETED_URI_CHAR = re.compile(r"[ \t<]")
_BAD_BARE_URI_CHAR = re.compile(r"[ \t<>,?]")


_KNOWN_NAMES: dict[str, str] = {}
"""Header names already seen as tokens, with their canonical form (bounded: the parser caches
at most ``_KNOWN_NAMES_MAX`` of the names it reads). It starts with the long names in lower
case, the form the views look fields up by."""
_KNOWN_NAMES_MAX = 512
_KNOWN_NAMES.update((name, name) for name in (
    *LIST_HEADERS, *COMPACT_FORMS.values(), *SINGLE_HEADERS, "authorization",
    "proxy-authorization", "www-authenticate", "proxy-authenticate", "user-agent", "server",
    "expires", "min-se", "privacy", "x-100ms-display-name", "x-100ms-userid"))  # fmt: skip


if TYPE_CHECKING:
    _view = cached_property
else:

    class _view(cached_property):
        """``cached_property`` without its lock (Python 3.11 takes one on every first read):
        a message is an immutable view, so computing a value twice in a race is harmless."""

        def __get__(self, instance, owner=None):
            if instance is None:
                return self
            value = self.func(instance)
            instance.__dict__[self.attrname] = value
            return value


def canonical_name(name: str) -> str:
    """Lower-case long form of a header name: ``"v"`` → ``"via"``, ``"CSeq"`` → ``"cseq"``."""
    known = _KNOWN_NAMES.get(name)
    if known is not None:
        return known
    lower = name.lower()
    return COMPACT_FORMS.get(lower, lower) if len(lower) == 1 else lower


def _token_name(name: str, line: int | None) -> str:
    """The canonical form of a header name read from the wire; SipParseError if not a token."""
    known = _KNOWN_NAMES.get(name)
    if known is not None:
        return known
    if not is_token(name):
        raise SipParseError(f"header name {name!r} is not a token", line)
    canonical = canonical_name(name)
    if len(_KNOWN_NAMES) < _KNOWN_NAMES_MAX:
        _KNOWN_NAMES[name] = canonical
    return canonical


def _unfold(text: str) -> str:
    """Replace each folding LWS (``*WSP CRLF 1*WSP``) by one SP and strip the ends."""
    if "\n" not in text:
        return text.strip(WSP)
    parts = [p.rstrip("\r") for p in text.split("\n")]
    return " ".join(p.strip(WSP) for p in parts).strip(WSP)


class Header:
    """One header field exactly as received or sent.

    ``raw`` is the field's bytes including any folding, without the final line end; ``eol``
    is that line end (CRLF, or LF when the peer sent bare LF). ``line`` is the 1-based line
    number in the parsed message (None for built fields). A malformed raw line given to the
    builder has ``name == ""``. ``canonical`` is the lower-case long form of the name
    (computed when not given). A plain slotted class: a load run makes dozens per call.
    """

    __slots__ = ("canonical", "eol", "line", "name", "raw", "value")

    def __init__(self, name: str, value: str, raw: bytes, eol: bytes = _CRLF,
                 line: int | None = None, canonical: str | None = None) -> None:  # fmt: skip
        self.name = name
        self.value = value
        self.raw = raw
        self.eol = eol
        self.line = line
        if canonical is None:
            canonical = canonical_name(name) if name else ""
        self.canonical = canonical

    def __repr__(self) -> str:
        return (f"Header(name={self.name!r}, value={self.value!r}, raw={self.raw!r}, "
                f"eol={self.eol!r}, line={self.line!r})")  # fmt: skip

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Header):
            return NotImplemented
        return (self.name, self.value, self.raw, self.eol, self.line) == (
            other.name, other.value, other.raw, other.eol, other.line)  # fmt: skip

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def build(cls, name: str, value: str) -> Header:
        """A field written ``Name: value``."""
        return cls(name, value, f"{name}: {value}".encode("utf-8", "surrogateescape"))

    @classmethod
    def from_raw(cls, raw: bytes, line: int | None = None) -> Header:
        """A field from its raw bytes (folding allowed); raises SipParseError without ':'."""
        text = raw.decode("utf-8", "surrogateescape")
        colon = text.find(":")
        if colon < 0:
            raise SipParseError("header field without ':'", line)
        name = text[:colon].rstrip(WSP)
        canonical = _token_name(name, line)
        return cls(name, _unfold(text[colon + 1 :]), raw, _CRLF, line, canonical)


@dataclass(frozen=True)
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=...``. Transport is upper-cased.

    Parsed Vias are shared between messages with the same field value: treat them (and
    their ``params``) as read-only."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    protocol: str = "SIP/2.0"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def rport(self) -> str | None:
        """None when absent, ``""`` when present without a value, else the value."""
        if "rport" not in self.params:
            return None
        return self.params["rport"] or ""

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{format_params(self.params)}"

    @classmethod
    def parse(cls, text: str) -> Via:
        """Parse one Via value; raises ValueError on bad syntax."""
        plain = _PLAIN_VIA.fullmatch(text)
        if plain is not None and int(plain["port"] or 0) <= 65535:
            transport, host, port, rest = plain.group("transport", "host", "port", "params")
            params = parse_params(rest or "", what="Via parameter")
            return cls(transport.upper(), host, int(port) if port else None, params)
        parts = text.split("/", 2)
        if len(parts) != 3:
            raise ValueError(f"Via {text!r} lacks 'SIP/2.0/transport'")
        name, version = parts[0].strip(WSP), parts[1].strip(WSP)
        rest = parts[2].lstrip(WSP)
        end = 0
        while end < len(rest) and rest[end] not in WSP:
            end += 1
        transport = rest[:end]
        if not is_token(name) or not is_token(version) or not is_token(transport):
            raise ValueError(f"bad sent-protocol in Via {text!r}")
        if end == len(rest) or rest[end] not in WSP:
            raise ValueError(f"Via {text!r} lacks a sent-by host")
        semi = rest.find(";", end)
        sent_by = (rest[end:] if semi < 0 else rest[end:semi]).strip(WSP)
        host, port = split_host_port(sent_by)
        params = parse_params(rest[semi:] if semi >= 0 else "", what="Via parameter")
        return cls(transport.upper(), host, port, params, f"{name}/{version}")


def split_host_port(text: str) -> tuple[str, int | None]:
    """``host[:port]`` (IPv6 in brackets) → (host, port); raises ValueError on bad syntax."""
    if not text:
        raise ValueError("empty host")
    if text[0] == "[":
        close = text.find("]")
        if close < 0:
            raise ValueError(f"IPv6 reference {text!r} lacks ']'")
        host, tail = text[: close + 1], text[close + 1 :]
        if tail and tail[0] != ":":
            raise ValueError(f"text after IPv6 reference in {text!r}")
        port_text = tail[1:] if tail else None
    else:
        host, colon, port_text_ = text.partition(":")
        port_text = port_text_ if colon else None
        if not host or _BAD_HOST_CHAR.search(host):
            raise ValueError(f"bad host {host!r}")
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not port_text.isascii() or len(port_text) > 5:
        raise ValueError(f"bad port {port_text!r}")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port {port} out of range")
    return host, port


@dataclass(frozen=True)
class NameAddr:
    """A From/To/Contact/Route value: display name, URI text and header parameters.

    ``display`` is None when absent and unquoted/unescaped when present. The Contact
    value ``*`` is ``NameAddr(None, "*")``. Parsed values are shared between messages with the
    same field value: treat them (and their ``params``) as read-only.
    """

    display: str | None
    uri: str
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        if self.uri == "*":
            return "*"
        display = "" if self.display is None else quote(self.display) + " "
        return f"{display}<{self.uri}>{format_params(self.params)}"

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        """Parse one name-addr or addr-spec value; raises ValueError on bad syntax."""
        s = text.strip(WSP)
        if s == "*":
            return cls(None, "*")
        display: str | None = None
        if s.startswith('"'):
            end = quoted_end(s, 0)
            display = unquote(s[:end])
            s = s[end:].lstrip(WSP)
            if not s.startswith("<"):
                raise ValueError("quoted display name not followed by '<URI>'")
        elif "<" in s:
            lt = s.index("<")
            words = s[:lt].split()
            if words:
                if not all(is_token(w) for w in words):
                    raise ValueError(
                        f"display name {s[:lt].strip()!r} has characters that need quoting"
                    )
                display = " ".join(words)
            s = s[lt:]
        if s.startswith("<"):
            close = s.find(">")
            if close < 0:
                raise ValueError("'<' without a matching '>'")
            uri, rest = s[1:close], s[close + 1 :]
            if not uri or _BAD_BRACKETED_URI_CHAR.search(uri):
                raise ValueError(f"bad URI {uri!r} inside <>")
        else:
            semi = s.find(";")
            uri, rest = (s, "") if semi < 0 else (s[:semi].rstrip(WSP), s[semi:])
            if _BAD_BARE_URI_CHAR.search(uri):
                raise ValueError(f"URI {uri!r} must be enclosed in <> (it has ' ', ',' or '?')")
        if not _SCHEME_RE.match(uri):
            raise ValueError(f"{uri!r} is not a URI (no scheme)")
        return cls(display, uri, parse_params(rest, what="header parameter"))


_PARSED_MAX = 4096
"""Field values remembered per cache below; a full cache starts again empty."""
_VIA_LISTS: dict[str, tuple[Via, ...]] = {}
_NAME_ADDR_LISTS: dict[str, tuple[NameAddr, ...]] = {}
_NAME_ADDRS: dict[str, NameAddr] = {}
"""Parsed field values by text. A call repeats the same From, To and Via in most of its
messages (a response carries the request's Via, every request our From), and parsing them
again was a tenth of a load generator's time; the parsed values are read-only."""

_T = TypeVar("_T")


def _remember(cache: dict[str, _T], text: str, value: _T) -> None:
    if len(cache) >= _PARSED_MAX:
        cache.clear()
    cache[text] = value


def _parsed_list(cache: dict[str, tuple[_T, ...]], text: str,
                 parse: Callable[[str], _T]) -> tuple[_T, ...]:  # fmt: skip
    """The comma-separated values of one field, parsed (ValueError on bad syntax)."""
    found = cache.get(text)
    if found is None:
        found = tuple(parse(p) for p in split_outside(text, ","))
        _remember(cache, text, found)
    return found


def new_via(transport: str, sent_by: str, *, rport: bool = True) -> str:
    """``SIP/2.0/<transport> <sent-by>;branch=<fresh>[;rport]``, the Via of a request we send.

    Its parsed form is remembered with it, so neither the transaction layer nor the
    responses that carry it back parse it again.
    """
    branch = new_branch()
    text = f"SIP/2.0/{transport} {sent_by};branch={branch}"
    params: dict[str, str | None] = {"branch": branch}
    if rport:
        text += ";rport"
        params["rport"] = None
    host, port = _sent_by_parts(sent_by)
    _remember(_VIA_LISTS, text, (Via(transport.upper(), host, port, params),))
    return text


_sent_by_parts = functools.lru_cache(maxsize=64)(split_host_port)


class Message:
    """A SIP request or response; the base of Request and Response."""

    version: str

    def __init__(
        self,
        start_line: bytes,
        headers: list[Header],
        body: bytes = b"",
        *,
        start_eol: bytes = _CRLF,
        blank_eol: bytes = _CRLF,
    ) -> None:
        self.start_line = start_line
        self.headers = headers
        self.body = body
        self.start_eol = start_eol
        self.blank_eol = blank_eol

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.start_line.decode('utf-8', 'replace')!r}>"

    def to_bytes(self) -> bytes:
        """The message's bytes: for a parsed message exactly the input as framed."""
        parts = [self.start_line, self.start_eol]
        for h in self.headers:
            parts.append(h.raw)
            parts.append(h.eol)
        parts.append(self.blank_eol)
        parts.append(self.body)
        return b"".join(parts)

    # --- lookup ---------------------------------------------------------------------------

    def header_fields(self, name: str) -> list[Header]:
        """Every field with this name (case-insensitive, compact-aware), in order."""
        key = canonical_name(name)
        return [h for h in self.headers if h.canonical == key]

    def header(self, name: str) -> str | None:
        """The first value of the field (case-insensitive, compact-aware), or None."""
        key = canonical_name(name)
        for h in self.headers:
            if h.canonical == key:
                return h.value
        return None

    def header_values(self, name: str) -> list[str]:
        """All values; fields in LIST_HEADERS are split on commas outside quotes and <>."""
        key = canonical_name(name)
        values: list[str] = []
        for h in self.headers:
            if h.canonical != key:
                continue
            if key in LIST_HEADERS and "," in h.value:
                try:
                    pieces = split_outside(h.value, ",")
                except ValueError as exc:
                    raise SipParseError(f"{h.name}: {exc}", h.line) from None
                values.extend(p.strip(WSP) for p in pieces)
            else:
                values.append(h.value)
        return values

    def has_header(self, name: str) -> bool:
        return self.header(name) is not None

    # --- editing (new messages) -----------------------------------------------------------

    def _evolve(self, headers: list[Header], body: bytes | None = None) -> Self:
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        for name in _CACHED_VIEWS:
            clone.__dict__.pop(name, None)
        clone.headers = headers
        if body is not None:
            clone.body = body
        return clone

    def replace_header(self, name: str, value: str) -> Self:
        """New message whose first ``name`` field has ``value`` (name spelled as there).

        Raises KeyError when there is no such field (like email.message.replace_header).
        """
        key = canonical_name(name)
        for i, h in enumerate(self.headers):
            if h.canonical == key:
                headers = list(self.headers)
                new = Header.build(h.name, value)
                new.eol = h.eol
                headers[i] = new
                return self._evolve(headers)
        raise KeyError(name)

    def add_header(self, name: str, value: str, *, before: str | None = None) -> Self:
        """New message with ``name: value`` added before the first ``before`` field, or last."""
        headers = list(self.headers)
        index = len(headers)
        if before is not None:
            key = canonical_name(before)
            index = next((i for i, h in enumerate(headers) if h.canonical == key), index)
        headers.insert(index, Header.build(name, value))
        return self._evolve(headers)

    def remove_header(self, name: str) -> Self:
        """New message without any ``name`` field (case-insensitive, compact-aware)."""
        key = canonical_name(name)
        return self._evolve([h for h in self.headers if h.canonical != key])

    def with_body(self, body: bytes) -> Self:
        """New message with ``body``; an existing Content-Length field gets the new length."""
        msg = self._evolve(list(self.headers), body)
        if msg.has_header("content-length"):
            msg = msg.replace_header("content-length", str(len(body)))
        return msg

    # --- parsed views ---------------------------------------------------------------------

    def _single(self, name: str) -> Header | None:
        key = canonical_name(name)
        for h in self.headers:
            if h.canonical == key:
                return h
        return None

    def _name_addrs(self, name: str) -> list[NameAddr]:
        out: list[NameAddr] = []
        for h in self.header_fields(name):
            try:
                out.extend(_parsed_list(_NAME_ADDR_LISTS, h.value, NameAddr.parse))
            except ValueError as exc:
                raise SipParseError(f"{h.name}: {exc}", h.line) from None
        return out

    def _name_addr(self, name: str) -> NameAddr | None:
        h = self._single(name)
        if h is None:
            return None
        found = _NAME_ADDRS.get(h.value)
        if found is not None:
            return found
        try:
            found = NameAddr.parse(h.value)
        except ValueError as exc:
            raise SipParseError(f"{h.name}: {exc}", h.line) from None
        _remember(_NAME_ADDRS, h.value, found)
        return found

    @_view
    def call_id(self) -> str | None:
        return self.header("call-id")

    @_view
    def cseq(self) -> tuple[int, str] | None:
        """(number, method); SipParseError when malformed or not below 2**31."""
        h = self._single("cseq")
        if h is None:
            return None
        parts = h.value.split()
        if len(parts) != 2:
            raise SipParseError(f"CSeq {h.value!r} is not 'number method'", h.line)
        number = _bounded_int(parts[0], 2**31 - 1)
        if number is None:
            raise SipParseError(f"CSeq number {parts[0][:20]!r} is not 0..2**31-1", h.line)
        if not is_token(parts[1]):
            raise SipParseError(f"CSeq method {parts[1]!r} is not a token", h.line)
        return number, parts[1]

    @_view
    def vias(self) -> list[Via]:
        out: list[Via] = []
        for h in self.header_fields("via"):
            try:
                out.extend(_parsed_list(_VIA_LISTS, h.value, Via.parse))
            except ValueError as exc:
                raise SipParseError(f"{h.name}: {exc}", h.line) from None
        return out

    @property
    def top_via(self) -> Via | None:
        vias = self.vias
        return vias[0] if vias else None

    @_view
    def from_(self) -> NameAddr | None:
        return self._name_addr("from")

    @_view
    def to(self) -> NameAddr | None:
        return self._name_addr("to")

    @_view
    def contact(self) -> list[NameAddr]:
        return self._name_addrs("contact")

    @_view
    def route(self) -> list[NameAddr]:
        return self._name_addrs("route")

    @_view
    def record_route(self) -> list[NameAddr]:
        return self._name_addrs("record-route")

    @_view
    def max_forwards(self) -> int | None:
        """0..255; SipParseError when malformed."""
        h = self._single("max-forwards")
        if h is None:
            return None
        value = _bounded_int(h.value, 255)
        if value is None:
            raise SipParseError(f"Max-Forwards {h.value[:20]!r} is not 0..255", h.line)
        return value

    @_view
    def content_length(self) -> int | None:
        h = self._single("content-length")
        if h is None:
            return None
        return _content_length_value(h)

    @_view
    def content_type(self) -> str | None:
        """Media type lower-cased without parameters (``application/sdp``), or None."""
        value = self.header("content-type")
        if value is None:
            return None
        return value.split(";", 1)[0].strip(WSP).lower()

    def validate(self) -> None:
        """Raise SipParseError for what makes a UAS answer 400 (RFC 3261 §8.1.1, §8.2, §20).

        Checks: Via, From, To, Call-ID, CSeq present; single-valued fields (Call-ID, From,
        To, CSeq, Max-Forwards, Content-Length) not repeated; every Via/From/To/Contact/
        Route/Record-Route value parses; CSeq and Max-Forwards in range; for requests, the
        CSeq method equals the request method and the Request-URI carries no ``?headers``.
        """
        for name in ("via", "from", "to", "call-id", "cseq"):
            if self._single(name) is None:
                raise SipParseError(f"missing mandatory header field {name!r}")
        for name in SINGLE_HEADERS:
            fields = self.header_fields(name)
            if len(fields) > 1:
                raise SipParseError(f"{name!r} appears {len(fields)} times", fields[1].line)
        _ = (self.cseq, self.vias, self.from_, self.to, self.contact, self.route)
        _ = (self.record_route, self.max_forwards, self.content_length)
        if not self.call_id:
            raise SipParseError("empty Call-ID")
        self._validate_start()

    def _validate_start(self) -> None:
        _ = self.cseq


class Request(Message):
    """A SIP request: ``method``, ``uri`` (text as written) and ``version``."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: list[Header],
        body: bytes = b"",
        *,
        version: str = "SIP/2.0",
        start_line: bytes | None = None,
        start_eol: bytes = _CRLF,
        blank_eol: bytes = _CRLF,
    ) -> None:
        if start_line is None:
            start_line = f"{method} {uri} {version}".encode("utf-8", "surrogateescape")
        super().__init__(start_line, headers, body, start_eol=start_eol, blank_eol=blank_eol)
        self.method = method
        self.uri = uri
        self.version = version

    def _validate_start(self) -> None:
        cseq = self.cseq
        assert cseq is not None
        if cseq[1] != self.method:
            raise SipParseError(
                f"CSeq method {cseq[1]!r} differs from the request method {self.method!r}"
            )
        if self.uri.lower().startswith(("sip:", "sips:")) and "?" in self.uri.split("@")[-1]:
            raise SipParseError("Request-URI carries ?headers (RFC 3261 §19.1.1)", 1)


class Response(Message):
    """A SIP response: ``status``, ``reason`` and ``version``."""

    def __init__(
        self,
        status: int,
        reason: str,
        headers: list[Header],
        body: bytes = b"",
        *,
        version: str = "SIP/2.0",
        start_line: bytes | None = None,
        start_eol: bytes = _CRLF,
        blank_eol: bytes = _CRLF,
    ) -> None:
        if start_line is None:
            start_line = f"{version} {status} {reason}".encode("utf-8", "surrogateescape")
        super().__init__(start_line, headers, body, start_eol=start_eol, blank_eol=blank_eol)
        self.status = status
        self.reason = reason
        self.version = version


_CACHED_VIEWS = tuple(
    name for name, value in vars(Message).items() if isinstance(value, cached_property)
)


def _bounded_int(text: str, limit: int) -> int | None:
    """The decimal ``text`` as an int in 0..limit, else None (leading zeros allowed)."""
    if not text.isdigit() or not text.isascii():
        return None
    digits = text.lstrip("0")
    if len(digits) > len(str(limit)):
        return None
    value = int(digits or "0")
    return value if value <= limit else None


def _content_length_value(h: Header) -> int:
    if not h.value.isdigit() or not h.value.isascii():
        raise SipParseError(
            f"Content-Length {h.value[:20]!r} is not a non-negative integer", h.line
        )
    return int(h.value)


def _parse_start_line(line: bytes) -> tuple[str, ...]:
    """('request', method, uri, version) or ('response', version, status, reason)."""
    text = line.decode("utf-8", "surrogateescape")
    if text[:4].upper() == "SIP/":
        version, _, rest = text.partition(" ")
        if not _VERSION_RE.fullmatch(version):
            raise SipParseError(f"bad SIP version {version!r} in status line", 1)
        code, _, reason = rest.partition(" ")
        if len(code) != 3 or not code.isdigit() or not code.isascii() or code[0] not in "123456":
            raise SipParseError(f"status code {code[:20]!r} is not 100..699", 1)
        return ("response", version, code, reason)
    parts = text.split(" ")
    if len(parts) != 3 or not all(parts):
        if text[:1] in WSP or not text:
            raise SipParseError("start line begins with whitespace or is empty", 1)
        raise SipParseError(
            "request line is not 'Method SP Request-URI SP SIP-Version' "
            "(extra or missing single spaces)",
            1,
        )
    method, uri, version = parts
    if not is_token(method):
        raise SipParseError(f"method {method[:30]!r} is not a token", 1)
    if uri.startswith("<"):
        raise SipParseError("Request-URI must not be enclosed in <>", 1)
    if any(c in uri for c in "\t\r"):
        raise SipParseError(f"Request-URI {uri[:40]!r} contains whitespace", 1)
    if not _SCHEME_RE.match(uri):
        raise SipParseError(f"Request-URI {uri[:40]!r} has no scheme", 1)
    if not _VERSION_RE.fullmatch(version):
        raise SipParseError(f"bad SIP version {version!r} in request line", 1)
    return ("request", method, uri, version)


def _split_lines(head: bytes) -> tuple[list[bytes], list[bytes]]:
    """Lines of the header section (which ends with its last line end) and their ends."""
    if head.count(b"\n") == head.count(b"\r\n"):
        lines = head[:-2].split(b"\r\n")
        return lines, [_CRLF] * len(lines)
    lines, eols = [], []
    for line in head[:-1].split(b"\n"):
        if line.endswith(b"\r"):
            lines.append(line[:-1])
            eols.append(_CRLF)
        else:
            lines.append(line)
            eols.append(b"\n")
    return lines, eols


def _parse_head(head: bytes, blank_eol: bytes) -> Request | Response:
    if b"\n " not in head and b"\n\t" not in head and head.count(b"\n") == head.count(b"\r\n"):
        return _parse_plain_head(head, blank_eol)
    lines, eols = _split_lines(head)
    kind, a, b, c = _parse_start_line(lines[0])
    headers: list[Header] = []
    i = 1
    n = len(lines)
    while i < n:
        line = lines[i]
        if not line or line[0] in b" \t":
            raise SipParseError("continuation line without a header field before it", i + 1)
        j = i + 1
        while j < n and lines[j][:1] in (b" ", b"\t"):
            j += 1
        if j == i + 1:
            raw = line
        else:
            raw = b"".join(lines[k] + eols[k] for k in range(i, j - 1)) + lines[j - 1]
        h = Header.from_raw(raw, i + 1)
        h.eol = eols[j - 1]
        headers.append(h)
        i = j
    if kind == "request":
        return Request(a, b, headers, version=c, start_line=lines[0], start_eol=eols[0],
                       blank_eol=blank_eol)  # fmt: skip
    return Response(int(b), c, headers, version=a, start_line=lines[0], start_eol=eols[0],
                    blank_eol=blank_eol)  # fmt: skip


def _parse_plain_head(head: bytes, blank_eol: bytes) -> Request | Response:
    """``_parse_head`` for the usual head: CRLF line ends and no folded fields, decoded once
    (a load generator parses thousands of these a second)."""
    lines = head[:-2].split(b"\r\n")
    texts = head[:-2].decode("utf-8", "surrogateescape").split("\r\n")
    kind, a, b, c = _parse_start_line(lines[0])
    headers: list[Header] = []
    append = headers.append
    known = _KNOWN_NAMES
    for i in range(1, len(lines)):
        text = texts[i]
        colon = text.find(":")
        if colon < 0:
            raise SipParseError("header field without ':'", i + 1)
        name = text[:colon].rstrip(WSP)
        canonical = known.get(name) or _token_name(name, i + 1)
        append(Header(name, text[colon + 1 :].strip(WSP), lines[i], _CRLF, i + 1, canonical))
    if kind == "request":
        return Request(a, b, headers, version=c, start_line=lines[0], blank_eol=blank_eol)
    return Response(int(b), c, headers, version=a, start_line=lines[0], blank_eol=blank_eol)


def _framing_length(msg: Message) -> int | None:
    fields = msg.header_fields("content-length")
    if not fields:
        return None
    if len(fields) > 1:
        raise SipParseError("several Content-Length fields: the body cannot be framed",
                            fields[1].line)  # fmt: skip
    return _content_length_value(fields[0])


def _skip_leading_crlf(data: bytes | bytearray, pos: int = 0) -> int:
    n = len(data)
    while pos < n and data[pos] in (13, 10):
        pos += 1
    return pos


def parse_message(data: bytes) -> Request | Response:
    """Parse one datagram. CRLFs before the start line are skipped (RFC 3261 §7.5); octets
    after Content-Length are ignored (§18.3); without Content-Length the body is the rest.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    start = _skip_leading_crlf(data)
    if start == len(data):
        raise SipParseError("empty message (only CRLF keep-alives)")
    m = _HEADER_END.search(data, start)
    if m is None:
        raise SipParseError("no empty line after the header fields (message truncated?)")
    head = data[start : m.start() + 1]
    msg = _parse_head(head, data[m.start() + 1 : m.end()])
    rest = data[m.end() :]
    length = _framing_length(msg)
    if length is None:
        msg.body = rest
    elif length > len(rest):
        h = msg.header_fields("content-length")[0]
        raise SipParseError(
            f"Content-Length {length} but only {len(rest)} octets follow the headers", h.line
        )
    else:
        msg.body = rest[:length]
    return msg


class StreamParser:
    """Frames messages on a byte stream (TCP/TLS) by Content-Length, which is required.

    CRLF keep-alives between messages are skipped. Garbage raises SipParseError; after an
    error the stream cannot be resynchronised and every later ``feed`` raises again.
    """

    def __init__(self, max_message_size: int = 65536) -> None:
        self.max_message_size = max_message_size
        self._buf = bytearray()
        self._scan_from = 0
        self._pending: Request | Response | None = None
        self._body_start = 0
        self._error: SipParseError | None = None

    @property
    def buffered(self) -> int:
        """Octets received and not yet part of a complete message."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Request | Response]:
        """Add received bytes; return the messages completed by them, in order."""
        if self._error is not None:
            raise self._error
        self._buf += data
        out: list[Request | Response] = []
        try:
            while self._step(out):
                pass
        except SipParseError as exc:
            self._error = exc
            raise
        return out

    def _step(self, out: list[Request | Response]) -> bool:
        buf = self._buf
        if self._pending is None:
            start = _skip_leading_crlf(buf)
            if start:
                del buf[:start]
                self._scan_from = 0
            if not buf:
                return False
            m = _HEADER_END.search(buf, self._scan_from)
            if m is None:
                self._check_partial_head()
                self._scan_from = max(0, len(buf) - 2)
                return False
            msg = _parse_head(bytes(buf[: m.start() + 1]), bytes(buf[m.start() + 1 : m.end()]))
            length = _framing_length(msg)
            if length is None:
                raise SipParseError("no Content-Length on a stream transport (RFC 3261 §18.3)")
            if m.end() + length > self.max_message_size:
                raise SipParseError(f"message larger than {self.max_message_size} octets")
            self._pending, self._body_start = msg, m.end()
        pending = self._pending
        end = self._body_start + (pending.content_length or 0)
        if len(buf) < end:
            return False
        pending.body = bytes(buf[self._body_start : end])
        del buf[:end]
        self._pending = None
        self._scan_from = 0
        out.append(pending)
        return True

    def _check_partial_head(self) -> None:
        buf = self._buf
        if len(buf) > self.max_message_size:
            raise SipParseError(f"no end of header fields within {self.max_message_size} octets")
        eol = buf.find(b"\n")
        if eol >= 0:
            _parse_start_line(bytes(buf[:eol]).rstrip(b"\r"))


def build_request(
    method: str,
    uri: str | SipURI,
    headers: Iterable[tuple[str, str] | bytes],
    body: bytes = b"",
    *,
    content_length: bool = True,
) -> Request:
    """A request with exactly the given header fields, in order (bytes = raw lines).

    Content-Length is appended only when ``content_length`` and no such field was given.
    """
    fields = _build_fields(headers)
    if content_length and not _has_content_length(fields):
        fields.append(Header("Content-Length", str(len(body)), b"Content-Length: %d" % len(body),
                             _CRLF, None, "content-length"))  # fmt: skip
    return Request(method, str(uri), fields, body)


def _has_content_length(fields: list[Header]) -> bool:
    return any(h.canonical == "content-length" for h in fields)


def _build_fields(headers: Iterable[tuple[str, str] | bytes]) -> list[Header]:
    fields: list[Header] = []
    append = fields.append
    known = _KNOWN_NAMES
    for item in headers:
        if type(item) is tuple:
            name, value = item
            append(Header(name, value, f"{name}: {value}".encode("utf-8", "surrogateescape"),
                          _CRLF, None, known.get(name)))  # fmt: skip
        elif isinstance(item, bytes | bytearray):
            try:
                append(Header.from_raw(bytes(item)))
            except SipParseError:
                text = bytes(item).decode("utf-8", "surrogateescape")
                append(Header("", text, bytes(item)))
        else:
            name, value = item
            append(Header.build(name, value))
    return fields


def build_response(
    request: Request,
    status: int,
    reason: str | None = None,
    headers: Sequence[tuple[str, str] | bytes] = (),
    body: bytes = b"",
    *,
    to_tag: str | None = None,
) -> Response:
    """A response copying Via (all, in order), From, To, Call-ID and CSeq from ``request``.

    ``to_tag`` is added to To when To has no tag. ``reason`` defaults to REASON_PHRASES.
    Content-Length is appended unless ``headers`` has one.
    """
    copied: list[Header] = []
    for h in request.headers:
        if h.canonical in ("via", "from", "call-id", "cseq"):
            copied.append(_copy_field(h))
        elif h.canonical == "to":
            to = _copy_field(h)
            if to_tag is not None and request.to is not None and request.to.tag is None:
                to = Header(h.name, f"{h.value};tag={to_tag}",
                            h.raw.rstrip(b" \t") + f";tag={to_tag}".encode())  # fmt: skip
            copied.append(to)
    copied.extend(_build_fields(headers))
    if not any(h.canonical == "content-length" for h in copied):
        copied.append(Header.build("Content-Length", str(len(body))))
    if reason is None:
        reason = REASON_PHRASES.get(status, "")
    return Response(status, reason, copied, body)


def _copy_field(h: Header) -> Header:
    return Header(h.name, h.value, h.raw, canonical=h.canonical)

"""SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966): parse, inspect and write back.

User, password, host and parameters keep their text as written (escapes included), so
``str(parse_uri(s)) == s`` for URIs whose ``?headers`` are minimally escaped. The ``?headers``
are percent-decoded exactly once into ``(name, value)`` pairs, the way a trunk turns a
Twilio ``<Sip>`` URI into request header fields. Extra names beyond docs/architecture.md:
``SipURI.param()``, ``SipURI.decoded_user``, ``SipURI.host_port``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from sipharness.sip.grammar import SipParseError

__all__ = ["SipParseError", "SipURI", "parse_uri"]

_ESCAPE_OK = re.compile(r"%(?![0-9A-Fa-f]{2})")
_USER_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+")
_PASSWORD_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,%]*")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9.])?")
_IPV6_RE = re.compile(r"\[[0-9A-Fa-f:.]+\]")
_PARAM_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$%]+")
_HEADER_SAFE = "[]/?:+$-_.!~*'()"
_TEL_RE = re.compile(r"\+?[0-9A-Fa-f*#\-.()pPwW]+")


@dataclass
class SipURI:
    """A ``sip:``, ``sips:`` or ``tel:`` URI. For ``tel:`` the number is ``user``, host is ""."""

    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        params = "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.params.items())
        if self.scheme == "tel":
            return f"tel:{self.user or ''}{params}"
        userinfo = ""
        if self.user is not None:
            userinfo = self.user
            if self.password is not None:
                userinfo += ":" + self.password
            userinfo += "@"
        text = f"{self.scheme}:{userinfo}{self.host_port}{params}"
        if self.headers:
            text += "?" + "&".join(
                f"{quote(k, safe=_HEADER_SAFE)}={quote(v, safe=_HEADER_SAFE)}"
                for k, v in self.headers
            )
        return text

    @property
    def host_port(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def decoded_user(self) -> str | None:
        """The user part with %-escapes decoded once (``%61lice`` → ``alice``)."""
        return None if self.user is None else unquote(self.user, errors="surrogateescape")

    def param(self, name: str) -> str | None:
        """A parameter's value by case-insensitive name (``""`` for a valueless one)."""
        key = name.lower()
        for k, v in self.params.items():
            if k.lower() == key:
                return "" if v is None else v
        return None

    def without_headers(self) -> SipURI:
        """The same URI without its ``?headers`` (what goes into the Request-URI)."""
        return dataclasses.replace(self, params=dict(self.params), headers=[])


def _check_escapes(text: str, what: str) -> None:
    if _ESCAPE_OK.search(text):
        raise SipParseError(f"bad %-escape in {what} {text!r}")


def _parse_params(text: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    if not text:
        return params
    for piece in text.split(";"):
        name, eq, value = piece.partition("=")
        if not name or not _PARAM_RE.fullmatch(name):
            raise SipParseError(f"bad URI parameter {piece!r}")
        if eq and not _PARAM_RE.fullmatch(value):
            raise SipParseError(f"bad value in URI parameter {piece!r}")
        _check_escapes(piece, "URI parameter")
        params[name] = value if eq else None
    return params


def _parse_headers(text: str) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for piece in text.split("&"):
        name, eq, value = piece.partition("=")
        if not name or not eq:
            raise SipParseError(f"URI header {piece!r} is not 'name=value'")
        if any(c in piece for c in ' \t<>"@'):
            raise SipParseError(f"URI header {piece!r} has characters that must be escaped")
        _check_escapes(piece, "URI header")
        headers.append((unquote(name), unquote(value, errors="surrogateescape")))
    return headers


def _parse_host_port(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        close = text.find("]")
        host, rest = text[: close + 1], text[close + 1 :]
        if close < 0 or not _IPV6_RE.fullmatch(host):
            raise SipParseError(f"bad IPv6 reference {text!r}")
    else:
        host, colon, port_text = text.partition(":")
        rest = colon + port_text
        if not _HOSTNAME_RE.fullmatch(host):
            raise SipParseError(f"bad host {host!r}")
    if not rest:
        return host, None
    port_text = rest[1:]
    if rest[0] != ":" or not port_text.isdigit() or not port_text.isascii():
        raise SipParseError(f"bad port in {text!r}")
    port = int(port_text) if len(port_text) <= 5 else 65536
    if port > 65535:
        raise SipParseError(f"port {port_text} out of range")
    return host, port


def parse_uri(text: str) -> SipURI:
    """Parse a sip:/sips:/tel: URI; SipParseError (a ValueError) says what is wrong."""
    scheme, colon, rest = text.partition(":")
    lower = scheme.lower()
    if not colon or lower not in ("sip", "sips", "tel"):
        if text.startswith("<"):
            raise SipParseError(f"URI {text[:40]!r} must not be enclosed in <>")
        raise SipParseError(f"{text[:40]!r} is not a sip:, sips: or tel: URI")
    if any(c in text for c in ' \t\r\n<>"'):
        raise SipParseError(f"URI {text[:60]!r} contains whitespace, '<', '>' or '\"'")
    if lower == "tel":
        number, _, tel_params = rest.partition(";")
        if not _TEL_RE.fullmatch(number) or "?" in rest:
            raise SipParseError(f"bad telephone number {number!r} in tel: URI")
        return SipURI("tel", number, None, "", None, _parse_params(tel_params))
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, colon, pw = userinfo.partition(":")
        if not _USER_RE.fullmatch(user):
            raise SipParseError(f"bad user part {user!r}")
        _check_escapes(user, "user part")
        if colon:
            if not _PASSWORD_RE.fullmatch(pw):
                raise SipParseError("bad password part")
            password = pw
    rest, qmark, header_text = rest.partition("?")
    host_text, semi, param_text = rest.partition(";")
    host, port = _parse_host_port(host_text)
    if semi and not param_text:
        raise SipParseError("empty URI parameter (trailing ';')")
    params = _parse_params(param_text)
    headers = _parse_headers(header_text) if qmark else []
    return SipURI(lower, user, password, host, port, params, headers)

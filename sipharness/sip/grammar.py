"""RFC 3261 §25 lexical pieces shared by the SIP parsers: tokens, quoted strings, parameters.

Every function is linear in its input and raises ValueError (never backtracks) on bad syntax.
"""

from __future__ import annotations

import re


class SipParseError(ValueError):
    """Bad SIP syntax: ``reason`` says what, ``line`` (1-based) where, when known."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        self.reason = reason
        self.line = line
        super().__init__(f"line {line}: {reason}" if line is not None else reason)


TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
"""RFC 3261 ``token`` (method names, header names, parameter names, tags)."""

WSP = " \t"

_PLAIN_PARAMS = re.compile(r"(?:;[A-Za-z0-9\-.!%*_+`'~]+(?:=[^;\s\"<]+)?)+")
"""``;name=value;flag`` with token names, no quotes, no ``<`` and no whitespace: what
``parse_params`` accepts as is (the common case, parsed without the general scan)."""


def is_token(text: str) -> bool:
    """True when ``text`` is a non-empty RFC 3261 token."""
    return TOKEN_RE.fullmatch(text) is not None


def quoted_end(text: str, start: int) -> int:
    """Index just past the quoted-string opening at ``text[start] == '"'``.

    Honours backslash quoted-pairs; raises ValueError when the closing quote is missing.
    """
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
        elif c == '"':
            return i + 1
        else:
            i += 1
    raise ValueError("unterminated quoted string")


def unquote(text: str) -> str:
    """The content of a quoted-string (``"a \\"b\\""`` → ``a "b"``); other text unchanged."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    inner = text[1:-1]
    if "\\" not in inner:
        return inner
    out: list[str] = []
    i = 0
    while i < len(inner):
        c = inner[i]
        if c == "\\" and i + 1 < len(inner):
            out.append(inner[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def quote(text: str) -> str:
    """``text`` as a quoted-string, escaping ``"`` and ``\\``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def split_outside(text: str, sep: str) -> list[str]:
    """Split ``text`` on ``sep`` where it is outside quoted strings and ``<...>``.

    Pieces are returned as written (not stripped). Raises ValueError on an unterminated
    quoted string or an unclosed ``<``.
    """
    if sep not in text:
        return [text]
    if '"' not in text and "<" not in text:
        return text.split(sep)
    pieces: list[str] = []
    begin = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i = quoted_end(text, i)
            continue
        if c == "<":
            close = text.find(">", i + 1)
            if close < 0:
                raise ValueError("'<' without a matching '>'")
            i = close + 1
            continue
        if c == sep:
            pieces.append(text[begin:i])
            begin = i + 1
        i += 1
    pieces.append(text[begin:])
    return pieces


def parse_params(text: str, *, what: str = "parameter") -> dict[str, str | None]:
    """Parse ``;name=value;flag`` (leading ``;`` required when ``text`` is not blank).

    Names are lower-cased (RFC 3261 §7.3.1: parameter names compare case-insensitively);
    values are kept as written, quoted strings with their quotes. LWS around ``;`` and
    ``=`` is allowed. Empty parameters (``;;``) and non-token names raise ValueError.
    """
    params: dict[str, str | None] = {}
    rest = text.strip(WSP)
    if not rest:
        return params
    if _PLAIN_PARAMS.fullmatch(rest) is not None:
        for piece in rest[1:].split(";"):
            name, eq, value = piece.partition("=")
            params[name.lower()] = value if eq else None
        return params
    if rest[0] != ";":
        raise ValueError(f"unexpected text {rest[:20]!r} before the {what}s")
    for piece in split_outside(rest[1:], ";"):
        name, eq, value = piece.partition("=")
        name = name.strip(WSP)
        if not name:
            raise ValueError(f"empty {what} (';;' or a trailing ';')")
        if not is_token(name):
            raise ValueError(f"{what} name {name!r} is not a token")
        if eq:
            value = value.strip(WSP)
            if not value:
                raise ValueError(f"{what} {name!r} has '=' but no value")
            if value[0] == '"':
                if quoted_end(value, 0) != len(value):
                    raise ValueError(f"text after the quoted value of {what} {name!r}")
            elif " " in value or "\t" in value:
                raise ValueError(f"whitespace inside the value of {what} {name!r}")
            params[name.lower()] = value
        else:
            params[name.lower()] = None
    return params


def format_params(params: dict[str, str | None]) -> str:
    """``{"tag": "x", "lr": None}`` → ``;tag=x;lr``."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())

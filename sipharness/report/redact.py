"""Credential redaction for everything that prints, logs or attaches a SIP message or a pcap.

Digest ``response=``/``cnonce=`` values of (Proxy-)Authorization and every registered secret
are replaced by ``[REDACTED]``; the rest of the message is left byte for byte as it was.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path

from sipharness.sip.digest import REDACTED, redact_authorization

_secrets: set[str] = set()
_secrets_lock = threading.Lock()

# A (Proxy-)Authorization header field at the start of a header line, with its folded
# continuation lines.
_AUTH_FIELD = re.compile(
    r"(?im)^(?P<name>(?:proxy-)?authorization)[ \t]*:(?P<value>[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)"
)
# In free text (logs, reprs) the header may follow a prefix on the same line.
_AUTH_IN_TEXT = re.compile(
    r"(?i)(?:(?:proxy-)?authorization\b|\bdigest[ \t])(?P<value>[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)"
)
# Length-preserving twin of sip.digest.redact_authorization, for rewriting pcaps in place.
_DIGEST_SECRET_PARAM = re.compile(
    r"""(?ix)(?<![\w.!%*+`'~-])(?P<name>response|cnonce)(?P<eq>\s*=\s*)
        (?P<val>"(?:[^"\\\r\n]|\\.)*"?|[^\s,;"]*)"""
)
_SCHEME = re.compile(r"(?P<lead>[ \t]*)(?P<scheme>[!%'*+.0-9A-Z^_`a-z|~-]+)(?P<rest>.*)", re.S)
_CONTENT_LENGTH = re.compile(r"(?im)^(content-length|l)([ \t]*:[ \t]*)(\d+)")


def register_secret(secret: str) -> None:
    """Redact every later occurrence of ``secret`` (a password, a token) in any output."""
    if secret:
        with _secrets_lock:
            _secrets.add(secret)


def forget_secrets() -> None:
    """Drop every registered secret (for tests that register their own)."""
    with _secrets_lock:
        _secrets.clear()


def _mask(length: int, keep_length: bool) -> str:
    """The text that replaces a value of ``length`` characters."""
    if not keep_length:
        return REDACTED
    if length >= len(REDACTED):
        return REDACTED + "*" * (length - len(REDACTED))
    return "*" * length


def _redact_digest_params(value: str, keep_length: bool) -> str:
    if not keep_length:
        return redact_authorization(value)

    def sub(m: re.Match[str]) -> str:
        val = m.group("val")
        if val.startswith('"'):
            closed = len(val) >= 2 and val.endswith('"')
            inner = len(val) - (2 if closed else 1)
            new = '"' + _mask(inner, keep_length) + ('"' if closed else "")
        else:
            new = _mask(len(val), True)
        return m.group("name") + m.group("eq") + new

    return _DIGEST_SECRET_PARAM.sub(sub, value)


def _redact_credentials(value: str, keep_length: bool) -> str:
    """Redact one (Proxy-)Authorization value: Digest secrets, or all of another scheme's."""
    m = _SCHEME.fullmatch(value)
    if m is None or m.group("scheme").lower() == "digest":
        return _redact_digest_params(value, keep_length)
    rest = m.group("rest")
    stripped = rest.strip()
    if not stripped:
        return value
    start = rest.index(stripped[0])
    masked = rest[:start] + _mask(len(stripped), keep_length) + rest[start + len(stripped) :]
    return m.group("lead") + m.group("scheme") + masked


def _replace_secrets(text: str, encode: Callable[[str], str], keep_length: bool) -> str:
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        needle = encode(secret)
        if needle in text:
            text = text.replace(needle, _mask(len(needle), keep_length))
    return text


def _as_latin1(secret: str) -> str:
    """A secret as the latin-1 view of its UTF-8 bytes (how raw messages are handled here)."""
    return secret.encode("utf-8").decode("latin-1")


def _split_head(text: str) -> tuple[str, str, str]:
    """(header section, blank-line separator, body) of a message held as latin-1 text."""
    m = re.search(r"\r?\n\r?\n", text)
    if m is None:
        return text, "", ""
    return text[: m.start()], text[m.start() : m.end()], text[m.end() :]


def redact_message(data: bytes, *, keep_length: bool = False) -> bytes:
    """Return ``data`` (one SIP message) with credentials replaced by ``[REDACTED]``.

    Only the values change, so the result parses like the input. Content-Length is rewritten
    only when a registered secret was removed from the body. With ``keep_length`` every
    replacement has the length of what it replaces (used to rewrite pcaps in place).
    """
    text = data.decode("latin-1")
    head, sep, body = _split_head(text)

    def sub(m: re.Match[str]) -> str:
        value = _redact_credentials(m.group("value"), keep_length)
        return m.group(0)[: m.start("value") - m.start()] + value

    head = _AUTH_FIELD.sub(sub, head)
    head = _replace_secrets(head, _as_latin1, keep_length)
    new_body = _replace_secrets(body, _as_latin1, keep_length)
    if new_body != body and not keep_length:
        new_len = len(new_body.encode("latin-1"))
        head = _CONTENT_LENGTH.sub(lambda m: f"{m.group(1)}{m.group(2)}{new_len}", head, count=1)
    return (head + sep + new_body).encode("latin-1")


def redact_text(text: str) -> str:
    """Return ``text`` (logs, reports, messages with prefixes) with credentials redacted."""

    def sub(m: re.Match[str]) -> str:
        value = _redact_digest_params(m.group("value"), keep_length=False)
        return m.group(0)[: m.start("value") - m.start()] + value

    text = _AUTH_IN_TEXT.sub(sub, text)
    return _replace_secrets(text, lambda s: s, keep_length=False)


def redact_pcap(source: str | Path, target: str | Path) -> int:
    """Write a copy of the pcap ``source`` to ``target`` with SIP credentials redacted.

    Every UDP datagram (also when IP-fragmented) and every TCP stream is redacted with
    :func:`redact_wire_bytes`, so packet sizes stay as captured; checksums are recomputed.
    Returns how many frames were rewritten.
    """
    from sipharness.capture.rewrite import rewrite_pcap

    return rewrite_pcap(source, target, redact_wire_bytes)


def redact_wire_bytes(data: bytes) -> bytes:
    """Same-length redaction of every (Proxy-)Authorization field and registered secret
    anywhere in ``data`` (a datagram, or a TCP stream holding several messages)."""
    text = data.decode("latin-1")

    def sub(m: re.Match[str]) -> str:
        value = _redact_credentials(m.group("value"), keep_length=True)
        return m.group(0)[: m.start("value") - m.start()] + value

    text = _AUTH_FIELD.sub(sub, text)
    return _replace_secrets(text, _as_latin1, keep_length=True).encode("latin-1")

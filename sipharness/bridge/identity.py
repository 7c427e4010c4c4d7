"""Caller identity from the raw INVITE: X-100ms-* headers, percent-decoding, phone-number masking.

The raw header lines are read here (not through sippy) so that the exact spelling of a
header name is available to the case-sensitivity fault."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from urllib.parse import unquote

DISPLAY_NAME_HEADER = "X-100ms-Display-Name"
USER_ID_HEADER = "X-100ms-UserID"
COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact",
           "l": "content-length", "c": "content-type", "k": "supported", "s": "subject",
           "e": "content-encoding", "o": "event", "r": "refer-to", "x": "session-expires"}

_USER_RE = re.compile(r"<?\s*(?:sips?|tel):([^@;>?]*)", re.IGNORECASE)
_DISPLAY_RE = re.compile(r'^\s*(?:"((?:[^"\\]|\\.)*)"|([^<"]*?))\s*<')


def raw_headers(text: str) -> list[tuple[str, str]]:
    """The header fields of a message head as (name as written, unfolded value)."""
    head = text.split("\r\n\r\n", 1)[0].split("\n\n", 1)[0]
    out: list[tuple[str, str]] = []
    for line in head.splitlines()[1:]:
        if line[:1] in (" ", "\t") and out:
            name, value = out[-1]
            out[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        if sep:
            out.append((name.strip(), value.strip()))
    return out


def header_value(headers: list[tuple[str, str]], name: str, *,
                 case_sensitive: bool = False) -> str | None:
    """The first value of header ``name`` (compact forms and case folded unless told not to)."""
    want = name if case_sensitive else name.lower()
    for hname, value in headers:
        if case_sensitive:
            if hname == want:
                return value
            continue
        folded = hname.lower()
        if COMPACT.get(folded, folded) == want:
            return value
    return None


def mask_number(number: str, keep_last: int = 4, mask_char: str = "X") -> str:
    """Mask a phone number: its digits, all but the last ``keep_last`` replaced.

    ``+1415555 1234`` → ``XXXXXXX1234``. Non-digits are dropped; a user part with no
    digits (``anonymous``) is returned as it is."""
    digits = "".join(ch for ch in number if ch.isdigit())
    if not digits:
        return number
    keep = min(keep_last, len(digits))
    return mask_char * (len(digits) - keep) + digits[len(digits) - keep:]


def caller_user_part(from_value: str) -> str:
    """The user part of the From URI, percent-decoded (empty when there is none)."""
    match = _USER_RE.search(from_value)
    return unquote(match.group(1)) if match else ""


def display_name(value: str) -> str:
    """The display-name of a name-addr (quotes and escapes removed; empty when none)."""
    match = _DISPLAY_RE.match(value)
    if not match:
        return ""
    if match.group(1) is not None:
        return re.sub(r"\\(.)", r"\1", match.group(1))
    return match.group(2).strip()


def withholds_identity(headers: list[tuple[str, str]]) -> bool:
    """True when the INVITE asks for ``Privacy: id`` (RFC 3325 §9.3), among other values."""
    values = [v for n, v in headers if n.lower() == "privacy"]
    tokens = [t.strip().lower() for v in values for t in re.split(r"[;,]", v)]
    return "id" in tokens


@dataclass
class CallerIdentity:
    """Who the caller is in the room."""

    user_id: str
    user_name: str
    number: str


def caller_identity(headers: list[tuple[str, str]], *, keep_last: int, mask_char: str,
                    case_sensitive: bool = False, decode: bool = True,
                    mask: bool = True, trust_pai: bool = False) -> CallerIdentity:
    """Derive user_id / user_name from the INVITE's headers.

    The first X-100ms-Display-Name / X-100ms-UserID wins; values are percent-decoded
    exactly once. With ``trust_pai`` (the INVITE came from a trusted trunk) the caller is
    the one in P-Asserted-Identity (RFC 3325): its number, and its display-name when there
    is no X-100ms-Display-Name; otherwise the From number. Without a (non-empty) display
    name the peer is named by the masked caller number. With ``Privacy: id`` the caller's
    number is withheld everywhere (``number`` is empty) and the peer is "Anonymous" unless
    X-100ms-Display-Name names it. Without a user id one is generated: ``sip-<uuid4 hex>``.
    Identity parameters in the Request-URI (``sip:code;X-100ms-UserID=x``) are ignored:
    only header fields count."""
    asserted = header_value(headers, "p-asserted-identity") if trust_pai else None
    number = caller_user_part(asserted or header_value(headers, "from") or "")
    name = header_value(headers, DISPLAY_NAME_HEADER, case_sensitive=case_sensitive)
    user = header_value(headers, USER_ID_HEADER, case_sensitive=case_sensitive)
    if decode:
        name = unquote(name, errors="replace") if name is not None else None
        user = unquote(user, errors="replace") if user is not None else None
    if withholds_identity(headers):
        number = ""
        name = name or "Anonymous"
    if not name and asserted:
        name = display_name(asserted)
    if not name:
        name = mask_number(number, keep_last, mask_char) if mask else number
    if not user:
        user = f"sip-{uuid.uuid4().hex}"
    return CallerIdentity(user_id=user, user_name=name, number=number)

"""Screening of raw requests before sippy sees them: malformed ones get 400/416/505 or are dropped.

RFC 3261 §8.2 and §16.3 list the checks; RFC 4475 shows what goes wrong. sippy is
lenient (and sometimes silent) about broken messages, so the bridge screens first and
answers statelessly when a response can be addressed (there is a Via)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sipharness.bridge.identity import COMPACT

_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_VIA = re.compile(r"^SIP\s*/\s*2\.0\s*/\s*[A-Za-z0-9\-.!%*_+`'~]+\s+[^\s;,]+", re.IGNORECASE)
# The top Via's sent-by and its rport/received: responses are sent there, so they must be a
# usable address (an IP or host name, a port 1-65535) or the request is refused.
_SENT_BY = re.compile(r"^SIP\s*/\s*2\.0\s*/\s*\S+\s+(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)"
                      r"\s*(?::\s*([0-9]{1,5}))?\s*(;.*)?$", re.IGNORECASE)
_DIGITS = re.compile(r"^[0-9]+$")
_CSEQ = re.compile(r"^(\d{1,10})\s+(\S+)$")
_SINGLE = ("from", "to", "call-id", "cseq", "max-forwards", "content-length")
_REQUIRED = ("via", "from", "to", "call-id", "cseq")
MAX_DATAGRAM = 65507


@dataclass
class Rejection:
    """Why a request is refused, and with which status (None: drop silently)."""

    status: int | None
    reason: str


def _split_message(data: bytes) -> tuple[str, list[str], bytes] | None:
    for sep in (b"\r\n\r\n", b"\n\n"):
        idx = data.find(sep)
        if idx >= 0:
            head, body = data[:idx], data[idx + len(sep):]
            break
    else:
        head, body = data, b""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("latin-1")
    lines = text.splitlines()
    if not lines:
        return None
    headers: list[str] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            headers[-1] += " " + line.strip()
        else:
            headers.append(line)
    return lines[0], headers, body


def _unquoted_quotes(value: str) -> int:
    if "\\" not in value:
        return value.count('"')
    count, i = 0, 0
    while i < len(value):
        if value[i] == "\\":
            i += 2
            continue
        if value[i] == '"':
            count += 1
        i += 1
    return count


def _name_addr_ok(value: str) -> bool:
    if _unquoted_quotes(value) % 2:
        return False
    if "<" in value:
        before = value.split("<", 1)[0].strip()
        if before and not before.startswith('"'):
            return all(_TOKEN.match(word) for word in before.split())
        return value.count("<") == 1 and ">" in value
    return True


def check_request(data: bytes, *, datagram: bool) -> Rejection | None:
    """None when the request is fit for sippy, else what to answer (or None status: drop)."""
    if len(data) > MAX_DATAGRAM:
        return Rejection(None, "oversized")
    parts = _split_message(data)
    if parts is None:
        return Rejection(None, "empty")
    start, headers, body = parts
    if "\x00" in start:
        return Rejection(None, "NUL in start line")
    fields = start.split(" ")
    if len(fields) != 3 or not all(fields):
        looks_like_request = len(start.split()) == 3 and start.split()[2].startswith("SIP/")
        return Rejection(400 if looks_like_request else None, "Malformed Request-Line")
    method, uri, version = fields
    if not _TOKEN.match(method):
        return Rejection(None, "not a SIP request")
    if not version.startswith("SIP/"):
        return Rejection(None, "not a SIP request")
    if version != "SIP/2.0":
        return Rejection(505, "Version Not Supported")
    if "<" in uri or ">" in uri:
        return Rejection(400, "Malformed Request-URI")
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
    if scheme not in ("sip", "sips", "tel"):
        return Rejection(416, "Unsupported URI Scheme")
    seen: dict[str, list[str]] = {}
    for line in headers:
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.match(name.strip()):
            return Rejection(400, "Malformed header line")
        folded = name.strip().lower()
        seen.setdefault(COMPACT.get(folded, folded), []).append(value.strip())
    for name in _REQUIRED:
        if not seen.get(name):
            return Rejection(400, f"Missing {name.title()} header")
    for name in _SINGLE:
        if len(seen.get(name, [])) > 1:
            return Rejection(400, f"More than one {name.title()} header")
    for via in seen["via"]:
        for part in via.split(","):
            if not _VIA.match(part.strip()):
                return Rejection(400, "Malformed Via header")
    top = _SENT_BY.match(seen["via"][0].split(",")[0].strip())
    if top is None or (top.group(2) is not None and not 0 < int(top.group(2)) < 65536):
        return Rejection(None, "unusable Via sent-by")
    rport = re.search(r";\s*rport\s*=\s*([^;\s]*)", top.group(3) or "", re.IGNORECASE)
    if rport and not (_DIGITS.match(rport.group(1)) and 0 < int(rport.group(1)) < 65536):
        return Rejection(None, "unusable Via rport")
    cseq = _CSEQ.match(seen["cseq"][0])
    if not cseq or int(cseq.group(1)) >= 2**31:
        return Rejection(400, "Malformed CSeq header")
    if cseq.group(2) != method:
        return Rejection(400, "CSeq method does not match the Request-Line")
    max_forwards = seen.get("max-forwards")
    if max_forwards and (not _DIGITS.match(max_forwards[0]) or int(max_forwards[0]) > 255):
        return Rejection(400, "Malformed Max-Forwards header")
    for name in ("from", "to"):
        if not _name_addr_ok(seen[name][0]):
            return Rejection(400, f"Malformed {name.title()} header")
    if not seen["call-id"][0]:
        return Rejection(400, "Empty Call-ID header")
    length = seen.get("content-length")
    if length:
        if not _DIGITS.match(length[0]):
            return Rejection(400, "Malformed Content-Length header")
        if datagram and int(length[0]) > len(body):
            return Rejection(400, "Content-Length larger than the message")
    return None


def _fill_rport(via_line: str, source: tuple[str, int]) -> str:
    name, _, value = via_line.partition(":")
    first, sep, rest = value.partition(",")
    if not re.search(r";\s*rport\s*(?=;|$)", first):
        return via_line
    first = re.sub(r";\s*rport\s*(?=;|$)", f";rport={source[1]}", first, count=1)
    if not re.search(r";\s*received=", first):
        first += f";received={source[0]}"
    return f"{name}:{first}{sep}{rest}"


def error_response(data: bytes, status: int, reason: str, to_tag: str,
                   extra: list[str] | None = None,
                   source: tuple[str, int] | None = None) -> bytes | None:
    """A stateless response to a raw request, copying Via/From/To/Call-ID/CSeq as received.

    With ``source``, an empty ``rport`` in the top Via is filled in (RFC 3581). None when
    the request has no Via (nowhere to send it) or is an ACK (never answered)."""
    parts = _split_message(data)
    if parts is None:
        return None
    start, headers, _ = parts
    if start.split(" ", 1)[0] == "ACK":
        return None
    out = [f"SIP/2.0 {status} {reason}"]
    has_via = False
    for line in headers:
        name, _, value = line.partition(":")
        folded = name.strip().lower()
        canonical = COMPACT.get(folded, folded)
        if canonical == "via":
            if not has_via and source is not None:
                line = _fill_rport(line, source)
            has_via = True
        if canonical == "to" and ";tag=" not in value.lower():
            line = f"{line.rstrip()};tag={to_tag}"
        if canonical in ("via", "from", "to", "call-id", "cseq"):
            out.append(line)
    if not has_via:
        return None
    out += extra or []
    out += ["Server: sipharness-bridge", "Content-Length: 0", "", ""]
    return "\r\n".join(out).encode("utf-8", errors="replace")

"""A raw SIP client for probing the mock bridge: exact bytes out, whole messages back.

Used by the bridge's own tests and for liveness checks (OPTIONS after torture input).
Independent of sippy and of sipharness.sip, so each can check the others."""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
import ssl
import time
from dataclasses import dataclass, field

from sipharness.bridge.digest import parse_auth_params
from sipharness.bridge.framing import frame_messages

DEFAULT_SDP = (
    "v=0\r\n"
    "o=probe 1 1 IN {family} {host}\r\n"
    "s=-\r\n"
    "c=IN {family} {host}\r\n"
    "t=0 0\r\n"
    "m=audio {port} RTP/AVP 0 8 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
    "a=sendrecv\r\n"
)


@dataclass
class SipReply:
    """A parsed SIP message as received (responses and requests the bridge sends)."""

    raw: bytes
    start: str
    headers: list[tuple[str, str]]
    body: str
    received_at: float = field(default_factory=time.monotonic)

    @property
    def status(self) -> int | None:
        """The status code of a response; None for a request."""
        parts = self.start.split(" ", 2)
        if parts[0] == "SIP/2.0" and len(parts) > 1 and parts[1].isdigit():
            return int(parts[1])
        return None

    @property
    def method(self) -> str | None:
        """The method of a request; None for a response."""
        return None if self.status is not None else self.start.split(" ", 1)[0]

    def header(self, name: str) -> str | None:
        """First value of a header, name case-insensitive (compact forms not expanded)."""
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        compact = {"via": "v", "from": "f", "to": "t", "call-id": "i", "contact": "m",
                   "content-length": "l", "content-type": "c"}
        names = {name.lower(), compact.get(name.lower(), name.lower())}
        return [v for n, v in self.headers if n.lower() in names]

    @property
    def to_tag(self) -> str | None:
        to = self.header("to") or ""
        match = re.search(r";\s*tag=([^;>\s]+)", to)
        return match.group(1) if match else None

    @property
    def cseq(self) -> tuple[int, str]:
        num, _, method = (self.header("cseq") or "0 ?").partition(" ")
        return int(num), method.strip()


def uri_host(host: str) -> str:
    """``host`` as written in a SIP URI or Via: IPv6 addresses in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def parse_reply(data: bytes) -> SipReply:
    """Split a whole SIP message into start line, headers (unfolded) and body."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", errors="replace").split("\r\n")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return SipReply(raw=data, start=lines[0], headers=headers,
                    body=body.decode("utf-8", errors="replace"))


def digest_authorization(challenge: str, method: str, uri: str, username: str, password: str,
                         *, qop: bool = True, nc: int = 1, cnonce: str | None = None) -> str:
    """A client's Authorization value for a ``Digest ...`` challenge (RFC 7616 §3.4)."""
    _, p = parse_auth_params(challenge)
    algorithm = p.get("algorithm", "MD5")
    hashes = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256,
              "SHA-512-256": lambda b=b"": hashlib.new("sha512_256", b)}

    def h(text: str) -> str:
        return str(hashes[algorithm.upper()](text.encode()).hexdigest())

    realm, nonce = p.get("realm", ""), p.get("nonce", "")
    ha1 = h(f"{username}:{realm}:{password}")
    ha2 = h(f"{method}:{uri}")
    quoted = username.replace("\\", "\\\\").replace('"', '\\"')
    value = (f'Digest username="{quoted}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
             f"algorithm={algorithm}")
    if qop:
        cnonce = cnonce or secrets.token_hex(8)
        nc_text = f"{nc:08x}"
        response = h(f"{ha1}:{nonce}:{nc_text}:{cnonce}:auth:{ha2}")
        value += f', qop=auth, nc={nc_text}, cnonce="{cnonce}"'
    else:
        response = h(f"{ha1}:{nonce}:{ha2}")
    value += f', response="{response}"'
    if "opaque" in p:
        value += f', opaque="{p["opaque"]}"'
    return value


class SipProbe:
    """One socket to the bridge (UDP, TCP or TLS) sending raw bytes and reading messages."""

    def __init__(self, host: str, port: int, transport: str = "udp",
                 tls_context: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.port = port
        self.transport = transport
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        sock = socket.socket(family, kind)
        sock.bind((host, 0))
        if transport != "udp":
            sock.settimeout(5.0)
            sock.connect((host, port))
            if transport == "tls":
                ctx = tls_context or ssl.create_default_context()
                sock = ctx.wrap_socket(sock, server_hostname=host)
        self.sock = sock
        self.local_host, self.local_port = sock.getsockname()[:2]
        self._buffer = bytearray()
        self._pending: list[SipReply] = []

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        if self.transport == "udp":
            self.sock.sendto(data, (self.host, self.port))
        else:
            self.sock.sendall(data)

    def recv(self, timeout: float = 2.0) -> SipReply | None:
        """The next whole message, or None when nothing comes within ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self._pending:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                if self.transport == "udp":
                    data, _ = self.sock.recvfrom(65535)
                    self._pending.append(parse_reply(data))
                else:
                    chunk = self.sock.recv(65535)
                    if not chunk:
                        return None
                    self._buffer += chunk
                    self._pending += [parse_reply(m) for m in frame_messages(self._buffer)]
            except (TimeoutError, BlockingIOError):
                return None
        return self._pending.pop(0)

    def collect(self, timeout: float) -> list[SipReply]:
        """Every message arriving within ``timeout`` seconds."""
        out: list[SipReply] = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = self.recv(left)
            if msg is None:
                break
            out.append(msg)
        return out

    def wait_status(self, accept: int | tuple[int, ...] | None = None,
                    timeout: float = 3.0) -> SipReply | None:
        """The next response that is final (>= 200) or whose code is in ``accept``."""
        codes = (accept,) if isinstance(accept, int) else accept or ()
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = self.recv(left)
            if msg is None:
                return None
            if msg.status is not None and (msg.status >= 200 or msg.status in codes):
                return msg
        return None

    def next_request(self, method: str, *, after_cseq: int,
                     timeout: float) -> SipReply | None:  # fmt: skip
        """The next ``method`` request from the bridge with a CSeq above ``after_cseq``
        (anything else, retransmissions included, is skipped); None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = self.recv(left)
            if msg is None:
                return None
            if msg.method == method and msg.cseq[0] > after_cseq:
                return msg
        return None

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> SipProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class DialIn:
    """Builds the requests of one dial-in (INVITE, ACK, CANCEL, BYE, re-INVITE) as text."""

    probe: SipProbe
    room_code: str
    caller: str = "+14155551234"
    display: str | None = None
    call_id: str = field(default_factory=lambda: secrets.token_hex(10) + "@probe")
    from_tag: str = field(default_factory=lambda: secrets.token_hex(6))
    cseq: int = 1
    to_tag: str | None = None
    rtp_port: int = 40000
    last_branch: str = ""

    @property
    def request_uri(self) -> str:
        return f"sip:{self.room_code}@{uri_host(self.probe.host)}:{self.probe.port}"

    def request(self, method: str, *, headers: tuple[str, ...] = (), body: str = "",
                cseq: int | None = None, branch: str | None = None, to_tag: str | None = None,
                uri: str | None = None) -> str:
        """One request in this call; Via/From/To/Call-ID/CSeq/Contact filled in."""
        self.last_branch = branch or "z9hG4bK" + secrets.token_hex(8)
        transport = self.probe.transport.upper()
        tag = to_tag if to_tag is not None else self.to_tag
        local = uri_host(self.probe.local_host)
        to = f"<sip:{self.room_code}@{uri_host(self.probe.host)}>" + (
            f";tag={tag}" if tag else "")
        name = f'"{self.display}" ' if self.display else ""
        lines = [
            f"{method} {uri or self.request_uri} SIP/2.0",
            f"Via: SIP/2.0/{transport} {local}:{self.probe.local_port}"
            f";branch={self.last_branch};rport",
            "Max-Forwards: 70",
            f"From: {name}<sip:{self.caller}@{local}>;tag={self.from_tag}",
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq if cseq is not None else self.cseq} {method}",
            f"Contact: <sip:{self.caller}@{local}:{self.probe.local_port}"
            f";transport={self.probe.transport}>",
            *headers,
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        return "\r\n".join(lines) + "\r\n\r\n" + body

    def sdp(self, port: int | None = None) -> str:
        host = self.probe.local_host
        return DEFAULT_SDP.format(host=host, port=port or self.rtp_port,
                                  family="IP6" if ":" in host else "IP4")

    def invite(self, *, headers: tuple[str, ...] = (), body: str | None = None,
               authorization: str | None = None) -> str:
        extra = headers + ((authorization,) if authorization else ())
        return self.request("INVITE", headers=extra, body=self.sdp() if body is None else body)

    def ack(self, response: SipReply) -> str:
        """The ACK for ``response`` to the INVITE with CSeq ``self.cseq``.

        For a non-2xx it reuses the INVITE's branch; for a 2xx it is a new transaction."""
        tag = response.to_tag
        status = response.status or 0
        branch = self.last_branch if status >= 300 else None
        if status < 300:
            self.to_tag = tag
        return self.request("ACK", branch=branch, to_tag=tag)

    def cancel(self) -> str:
        return self.request("CANCEL", branch=self.last_branch, to_tag="")

    def bye(self) -> str:
        self.cseq += 1
        return self.request("BYE")


def response_to(request: SipReply, status: int, reason: str, *, contact: str = "",
                body: str = "") -> str:
    """The caller's answer to a request the bridge sent (Via, From, To, Call-ID and CSeq
    copied), with a Contact and an SDP body when given."""
    lines = [f"SIP/2.0 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in request.headers
              if name.lower() in ("via", "v", "from", "f", "to", "t", "call-id", "i", "cseq")]
    if contact:
        lines.append(f"Contact: {contact}")
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return "\r\n".join(lines) + "\r\n\r\n" + body


def options_ping(host: str, port: int, transport: str = "udp", timeout: float = 2.0,
                 tls_context: ssl.SSLContext | None = None) -> int | None:
    """Send one OPTIONS; the status code of the answer, or None when none came."""
    try:
        with SipProbe(host, port, transport, tls_context) as probe:
            call = DialIn(probe, "ping")
            probe.send(call.request("OPTIONS"))
            reply = probe.wait_status(timeout=timeout)
            return reply.status if reply is not None else None
    except OSError:
        return None


def challenge_value(challenge: SipReply, algorithm: str | None = None) -> str:
    """The WWW-Authenticate (401) or Proxy-Authenticate (407) value to answer: the first,
    or the first offering ``algorithm``; LookupError when none offers it."""
    name = "Proxy-Authenticate" if challenge.status == 407 else "WWW-Authenticate"
    offered = challenge.header_values(name)
    if algorithm is None:
        return offered[0] if offered else ""
    for value in offered:
        if parse_auth_params(value)[1].get("algorithm", "MD5").upper() == algorithm.upper():
            return value
    raise LookupError(f"no {name} of the {challenge.status} offers algorithm={algorithm}")


def answer_challenge(probe: SipProbe, call: DialIn, challenge: SipReply, username: str,
                     password: str, *, headers: tuple[str, ...] = (), body: str | None = None,
                     algorithm: str | None = None, qop: bool = True,
                     digest_uri: str | None = None, wait_before_answer: float = 0.0) -> str:
    """ACK a 401/407 ``challenge``, then send the INVITE again (next CSeq) with credentials.

    ``algorithm`` picks the challenge offering it; ``qop=False`` answers without qop (RFC 2069
    style); ``digest_uri`` is the uri= the response is computed for (the Request-URI unless a
    test means it to be wrong); ``wait_before_answer`` seconds pass between the ACK and the
    INVITE (to let a nonce expire). Returns the INVITE as sent."""
    probe.send(call.ack(challenge))
    if wait_before_answer > 0:
        time.sleep(wait_before_answer)
    call.cseq += 1
    auth_name = "Proxy-Authorization" if challenge.status == 407 else "Authorization"
    value = digest_authorization(challenge_value(challenge, algorithm), "INVITE",
                                 digest_uri or call.request_uri, username, password, qop=qop)
    invite = call.invite(headers=headers, body=body, authorization=f"{auth_name}: {value}")
    probe.send(invite)
    return invite


def send_authenticated_invite(probe: SipProbe, call: DialIn, username: str, password: str, *,
                              headers: tuple[str, ...] = (), body: str | None = None,
                              timeout: float = 3.0, algorithm: str | None = None,
                              qop: bool = True, digest_uri: str | None = None,
                              wait_before_answer: float = 0.0
                              ) -> tuple[SipReply | None, str | None]:
    """INVITE → challenge → ACK → INVITE with credentials, sent; its answers are not read.

    Returns the first reply and the authenticated INVITE as sent (None when the first reply
    was no 401/407 challenge), so a caller can retransmit it byte for byte. The keyword
    options after ``timeout`` are those of :func:`answer_challenge`."""
    probe.send(call.invite(headers=headers, body=body))
    first = probe.wait_status(timeout=timeout)
    if first is None or first.status not in (401, 407):
        return first, None
    invite = answer_challenge(probe, call, first, username, password, headers=headers,
                              body=body, algorithm=algorithm, qop=qop, digest_uri=digest_uri,
                              wait_before_answer=wait_before_answer)
    return first, invite


def authenticated_call(probe: SipProbe, call: DialIn, username: str, password: str, *,
                       headers: tuple[str, ...] = (), body: str | None = None,
                       timeout: float = 3.0) -> tuple[SipReply | None, list[SipReply]]:
    """INVITE → challenge → ACK → INVITE with credentials → final answer (2xx not yet ACKed).

    Returns the final response to the authenticated INVITE and every message received."""
    first, invite = send_authenticated_invite(probe, call, username, password,
                                              headers=headers, body=body, timeout=timeout)
    seen = [first] if first is not None else []
    if invite is None:
        return first, seen
    deadline = time.monotonic() + timeout
    final = None
    while (left := deadline - time.monotonic()) > 0:
        msg = probe.recv(left)
        if msg is None:
            break
        seen.append(msg)
        if msg.status is not None and msg.status >= 200 and msg.cseq[0] == call.cseq:
            final = msg
            break
    return final, seen

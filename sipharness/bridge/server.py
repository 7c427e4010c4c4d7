"""The mock bridge's SIP server: sippy's RFC 3261 transactions plus the 100ms dial-in contract.

Runs in its own process (never under gevent), sippy's loop at freq=1000, SIPLOG_BEND=none."""

from __future__ import annotations

import os

os.environ["SIPLOG_BEND"] = "none"

import contextlib
import json
import re
import secrets
import signal
import socket
import ssl
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from hashlib import md5
from typing import Any, TextIO

from sippy.Core.EventDispatcher import ED2
from sippy.MsgBody import MsgBody
from sippy.SipFrom import SipFrom
from sippy.SipGenericHF import SipGenericHF
from sippy.SipHeader import SipHeader
from sippy.SipLogger import SipLogger
from sippy.SipRequest import SipRequest
from sippy.SipTo import SipTo
from sippy.SipTransactionManager import SipTransactionManager
from sippy.SipURL import SipURL
from sippy.Time.Timeout import Timeout
from sippy.Udp_server import Udp_server, Udp_server_opts

from sipharness.bridge.config import BridgeConfig, Room
from sipharness.bridge.digest import NONCE_SECRET_ENV, DigestVerifier, Verdict
from sipharness.bridge.flood import FloodLimiter
from sipharness.bridge.identity import (
    CallerIdentity,
    caller_identity,
    header_value,
    mask_number,
    raw_headers,
)
from sipharness.bridge.media import MediaEngine, MediaSession
from sipharness.bridge.precheck import check_request, error_response
from sipharness.bridge.room_events import (
    Peer,
    Roster,
    RosterServer,
    WebhookSender,
    envelope,
)
from sipharness.bridge.sdp_answer import Answer, OfferError, build_answer, parse_offer
from sipharness.bridge.session_timer import (
    SessionTimer,
    SessionTimerError,
    TooSmall,
    negotiate,
    refresh_method,
)
from sipharness.bridge.stream import StreamListener
from sipharness.hostenv import free_port

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE"
SUPPORTED = "timer"  # RFC 4028 session timers (EXT-01)
ACCEPT = "application/sdp"
SERVER = "sipharness-bridge"
REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 410: "Gone",
           480: "Temporarily Unavailable", 484: "Address Incomplete", 486: "Busy Here"}
SIPPY_T1 = 0.5  # sippy arms its 2xx/non-2xx retransmission timer at 0.5 s and Timer D at 32 s
_TO_TAG = re.compile(rb"\n(?:to|t)[ \t]*:[^\r\n]*;[ \t]*tag=", re.IGNORECASE)


class NamedHeader(SipGenericHF):
    """A header sippy passes through untouched, written with its exact name."""

    def __init__(self, name: str, value: str) -> None:
        super().__init__(value, name)
        self.exact_name = name
        self.parsed = True

    def getCanName(self, name: str, compact: bool = False) -> str:
        return self.exact_name

    def getCopy(self) -> NamedHeader:
        return NamedHeader(self.exact_name, self.body)


def add_header(msg: Any, name: str, value: str) -> None:
    """Append ``name: value`` to a sippy message."""
    msg.appendHeader(SipHeader(name=name.lower(), body=NamedHeader(name, value)))


class _NoUdp:
    """Stands in for sippy's UDP server when the bridge listens on TCP/TLS only."""

    transport = "udp"

    def __init__(self, global_config: dict[str, Any], uopts: Any) -> None:
        self.uopts = uopts

    def getSIPaddr(self) -> tuple[Any, str]:
        return (self.uopts.laddress, self.transport)

    def send_to(self, data: Any, address: Any, delayed: bool = False) -> None:
        return

    def addr2str(self, address: Any) -> str:
        return f"udp:{address[0]}:{address[1]}"

    def shutdown(self) -> None:
        return


class OrderedUdpOpts(Udp_server_opts):
    """One sender thread: sippy's default three can reorder 100/180/200 sent back to back.

    A large receive buffer absorbs bursts (floods, load tests) instead of dropping them.
    With ``reuse_port`` several bridge processes bind the same port (SO_REUSEPORT)."""

    nworkers = 1
    reuse_port = False

    def getSockOpts(self) -> list[tuple[int, int, int]]:
        opts: list[tuple[int, int, int]] = super().getSockOpts()
        opts.append((socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20))  # absorb bursts
        if self.reuse_port:
            opts += [(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1),
                     (socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)]
        return opts


class BridgeTransactionManager(SipTransactionManager):
    """sippy's transaction layer with the bridge's timers (T1/T2), screening and faults."""

    bridge: Bridge

    def handleIncoming(self, data_in: bytes, ra: Any, server: Any, rtime: Any) -> None:
        try:
            if self.bridge.screen(data_in, ra, server):
                super().handleIncoming(data_in, ra, server, rtime)
        except Exception as exc:  # a message must never stop the loop
            self.bridge.log(f"dropped message from {ra}: {type(exc).__name__}: {exc}")

    def incomingRequest(self, msg: Any, checksum: Any, tids: Any, server: Any) -> None:
        via = msg.getHFBody("via")
        # Responses go to the source IP (never a name to resolve): RFC 3581 §4 asks for
        # received= with rport even when identical; a sender's own received= is replaced.
        if "rport" in via.params or "received" in via.params:
            via.params["received"] = msg.getSource()[0]
        if msg.getMethod() == "CANCEL" and msg.getTId(wBRN=True) not in self.tserver \
                and self.bridge.answered_invite(msg):
            self.transmitMsg(server, self.bridge.cancel_ok(msg),
                             msg.getHFBody("via").getTAddr(), checksum)
            return
        super().incomingRequest(msg, checksum, tids, server)

    def sendResponse(self, resp: Any, t: Any = None, retrans: bool = False,
                     ack_cb: Any = None, lossemul: int = 0) -> None:
        super().sendResponse(resp, t, retrans, ack_cb, lossemul)
        if t is None or t.teA is None:
            return
        cfg = self.bridge.config
        code = resp.getSCode()[0]
        reliable = t.userv.transport in ("tcp", "tls")
        stop = (code < 300 and cfg.has_fault("no-2xx-retransmit")) or (code >= 300 and reliable)
        t.retransmit_at = time.monotonic() + cfg.t1
        if cfg.t1 == SIPPY_T1 and not stop:
            return
        t.teA.cancel()
        t.teA = None
        if t.teD is not None:
            t.teD.cancel()
            t.teD = Timeout(self.timerD, 64 * cfg.t1, 1, t)
        if not stop:
            t.tout = cfg.t1
            t.teA = Timeout(self.timerA, t.tout, 1, t)

    def newTransaction(self, msg: Any, resp_cb: Any = None, laddress: Any = None,
                       userv: Any = None, cb_ifver: int = 1, compact: bool = False,
                       t: Any = None) -> Any:
        """A request from the bridge (BYE, UPDATE, re-INVITE) on the bridge's T1: copies
        over UDP only, and 408 to ``resp_cb`` at Timer B/F = 64·T1 (RFC 3261 §17.1)."""
        t = super().newTransaction(msg, resp_cb, laddress, userv, cb_ifver, compact, t)
        t1 = self.bridge.config.t1
        t.teA.cancel()
        t.teA = None
        if t.userv.transport not in ("tcp", "tls"):
            t.tout = t1
            t.retransmit_at = time.monotonic() + t1
            t.teA = Timeout(self.timerA, t1, 1, t)
        t.teB.cancel()
        t.teB = Timeout(self.timerB, 64 * t1, 1, t)
        return t

    def timerA(self, t: Any) -> None:
        """Retransmit on the RFC schedule (T1, 2·T1, …; capped at T2 except for the bridge's
        own INVITEs, RFC 3261 §17.1.1.2) counted from the first send, so a busy loop's late
        timers do not push later copies back."""
        if t.data is None or t.userv is None:
            return
        self.transmitData(t.userv, t.data, t.address)
        client_invite = t.method == "INVITE" and self.tclient.get(t.tid) is t
        t.tout = t.tout * 2 if client_invite else min(t.tout * 2, self.bridge.config.t2)
        t.retransmit_at += t.tout
        t.teA = Timeout(self.timerA, max(0.0, t.retransmit_at - time.monotonic()), 1, t)


@dataclass
class Call:
    """One dial-in: from the first authenticated INVITE to its end."""

    call_id: str
    from_tag: str
    to_tag: str
    invite: Any
    transaction: Any
    userv: Any
    source: tuple[str, int]
    room: Room
    identity: CallerIdentity
    invite_cseq: int
    answer: Answer
    media: MediaSession | None
    started: float = field(default_factory=time.monotonic)
    state: str = "proceeding"
    peer: Peer | None = None
    remote_cseq: int = 0
    local_cseq: int = 0
    sdp_version: int = 1
    first_sdp: str = ""
    last_offer: str = ""
    session_id: int = 0
    answer_timer: Any = None
    final_status: int = 0
    session_timer: SessionTimer | None = None
    expiry: Any = None
    refresh_method: str = "INVITE"


class Bridge:
    """The SIP UAS: screens, authenticates, answers, tracks calls, announces peers."""

    def __init__(self, config: BridgeConfig, out: TextIO = sys.stdout,
                 err: TextIO = sys.stderr, roster_events: bool = False) -> None:
        self.config = config
        self.out = out
        self.err = err
        self.calls: dict[tuple[str, str], Call] = {}
        self.passwords = {c.username: c.password for c in config.credentials}
        secret = bytes.fromhex(os.environ.get(NONCE_SECRET_ENV, ""))
        self.verifier = DigestVerifier(config.realm, config.algorithms, config.nonce_lifetime,
                                       secret, config.max_nonces)
        self.flood = FloodLimiter(config.flood_rate, config.flood_burst)
        self.roster_events = roster_events
        self.roster = Roster()
        self.webhooks: WebhookSender | None = None
        if config.webhook_url:
            self.webhooks = WebhookSender(config.webhook_url, config.webhook_secret_header,
                                          config.webhook_secret, config.webhook_retries)
        self.roster_api: RosterServer | None = None
        if config.roster_port is not None:
            self.roster_api = RosterServer(self.roster, config.roster_host, config.roster_port)
        self.media: MediaEngine | None = None
        if config.media_mode != "none":
            self.media = MediaEngine(config.host, config.rtp_ports, config.media_mode)
        self.listeners: list[StreamListener] = []
        self.stopping = False
        if config.rtp_timeout is not None and self.media is not None:
            Timeout(self._check_rtp, min(0.5, config.rtp_timeout / 2), -1)
        self.answered = 0
        self._start_sip()

    def _start_sip(self) -> None:
        cfg = self.config
        if cfg.udp_port == 0 and cfg.tcp_port == 0:  # "any free port": one number for both
            family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
            cfg.udp_port = cfg.tcp_port = free_port(cfg.host, family)
        udp_port = cfg.udp_port if cfg.udp_port is not None else 0
        sip_host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host  # sippy's IPv6 form
        gc: dict[str, Any] = {"_sip_address": sip_host, "_sip_port": udp_port,
                              "_sip_logger": SipLogger("sipharness-bridge")}
        OrderedUdpOpts.reuse_port = cfg.reuse_port
        if cfg.udp_port is None:
            BridgeTransactionManager.model_udp_server = (_NoUdp, OrderedUdpOpts)
        else:
            BridgeTransactionManager.model_udp_server = (Udp_server, OrderedUdpOpts)
        BridgeTransactionManager.bridge = self
        self.tm = BridgeTransactionManager(gc, self.on_request)
        self.tm.provisional_retr = cfg.provisional_repeat  # DLG-14: 180 again while ringing
        self.udp = self.tm.l4r.getServer(None) if cfg.udp_port is not None else None
        if self.udp is not None:
            self.udp_port = int(self.udp.uopts.laddress[1])
        if cfg.tcp_port is not None:
            self.listeners.append(StreamListener(cfg.host, cfg.tcp_port, self.tm.handleIncoming,
                                                 reuse_port=cfg.reuse_port))
        if cfg.tls_port is not None and cfg.tls_cert and cfg.tls_key:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
            self.listeners.append(StreamListener(cfg.host, cfg.tls_port, self.tm.handleIncoming,
                                                 tls=ctx, reuse_port=cfg.reuse_port))

    # ----- reporting
    def log(self, text: str) -> None:
        print(text, file=self.err, flush=True)

    def ready_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"host": self.config.host}
        if self.udp is not None:
            info["udp"] = self.udp_port
        for listener in self.listeners:
            info[listener.transport] = listener.port
        if self.roster_api is not None:
            info["roster_url"] = self.roster_api.url
        info["faults"] = list(self.config.faults)
        return info

    # ----- screening (raw bytes, before sippy)
    def screen(self, data: bytes, ra: Any, server: Any) -> bool:
        """True when sippy should process ``data``; otherwise it was answered or dropped."""
        self._raw = data
        if data[:8] == b"SIP/2.0 ":
            return len(data) <= 65507
        rejection = check_request(data, datagram=getattr(server, "transport", "udp") == "udp")
        if rejection is not None:
            if rejection.status is not None:
                extra = [f"Warning: 399 sipharness \"{rejection.reason}\""]
                if rejection.status == 505:
                    extra = []
                resp = error_response(data, rejection.status, rejection.reason,
                                      secrets.token_hex(8), extra, source=ra.address)
                if resp is not None:
                    server.send_to(resp, ra.address)
            return False
        if data[:7] != b"INVITE ":
            return True
        checksum = md5(data).digest()
        retransmission = checksum in self.tm.l1rcache or checksum in self.tm.l2rcache
        if retransmission and self.config.has_fault("double-join-on-retransmit"):
            self._rejoin(data)
        # Every new INVITE counts (AUTH-10): none is authenticated yet, and a made-up
        # Authorization header must not get around the limit. Retransmissions do not count.
        if not retransmission and not _TO_TAG.search(data.split(b"\r\n\r\n", 1)[0]) \
                and not self.flood.allow(tuple(ra.address[:2])):
            if self.flood.dropped in (1, 10, 100) or self.flood.dropped % 1000 == 0:
                self.log(f"rate limit: {self.flood.dropped} new INVITEs dropped "
                         f"(latest from {ra.address[0]}:{ra.address[1]})")
            return False
        return True

    def _rejoin(self, data: bytes) -> None:
        call_id = header_value(raw_headers(data.decode("utf-8", "replace")), "call-id")
        for call in self.calls.values():
            if call.call_id == call_id and call.peer is not None and self.webhooks:
                self.webhooks.send(envelope("peer.join.success", call.peer,
                                            self.config.app_id, self.config.account_id))

    # ----- building responses
    def _response(self, req: Any, code: int, reason: str, to_tag: str | None = None,
                  body: str | None = None) -> Any:
        resp = req.genResponse(code, reason, body=MsgBody(body) if body else None)
        if to_tag is not None and code > 100:
            resp.getHFBody("to").setTag(to_tag)
        add_header(resp, "Server", SERVER)
        return resp

    def _final(self, req: Any, code: int, reason: str, extra: tuple[tuple[str, str], ...] = ()
               ) -> tuple[Any, None, None]:
        resp = self._response(req, code, reason, secrets.token_hex(8))
        for name, value in extra:
            add_header(resp, name, value)
        return resp, None, None

    # ----- requests
    def on_request(self, req: Any, t: Any) -> tuple[Any, Any, Any] | None:
        method = req.getMethod()
        if method in ("OPTIONS", "BYE"):
            unsupported = self._unsupported_require(raw_headers(self._raw_text()))
            if unsupported:
                return self._final(req, 420, "Bad Extension",
                                   (("Unsupported", ", ".join(unsupported)),))
        if method == "INVITE":
            return self.on_invite(req, t)
        if method == "UPDATE":
            return self.on_update(req, t)
        if method == "BYE":
            return self.on_bye(req)
        if method == "OPTIONS":
            return self._final(req, 200, "OK", (("Allow", ALLOW), ("Accept", ACCEPT),
                                                ("Supported", SUPPORTED)))
        if method == "CANCEL":
            return self._final(req, 481, "Call/Transaction Does Not Exist")
        if self.config.has_fault("405-without-allow"):
            return self._final(req, 405, "Method Not Allowed")
        return self._final(req, 405, "Method Not Allowed", (("Allow", ALLOW),))

    def _raw_text(self) -> str:
        return self._raw.decode("utf-8", errors="replace")

    def _unsupported_require(self, headers: list[tuple[str, str]]) -> list[str]:
        tags: list[str] = []
        for name, value in headers:
            if name.lower() == "require":
                tags += [v.strip() for v in value.split(",")
                         if v.strip() and v.strip().lower() != "timer"]
        return tags

    def _session_timer(self, req: Any, to_tag: str | None = None
                       ) -> SessionTimer | tuple[Any, None, None] | None:
        """The request's session timer (EXT-01), or the 400/422 refusing it."""
        try:
            timer = negotiate(raw_headers(self._raw_text()), self.config.min_se)
        except SessionTimerError as exc:
            resp = self._response(req, 400, "Bad Request", to_tag or secrets.token_hex(8))
            reason = str(exc).replace('"', "'")
            add_header(resp, "Warning", f'399 sipharness "{reason}"')
            return resp, None, None
        if isinstance(timer, TooSmall):
            resp = self._response(req, 422, "Session Interval Too Small",
                                  to_tag or secrets.token_hex(8))
            add_header(resp, "Min-SE", str(timer.min_se))
            return resp, None, None
        return timer

    def _arm_session_timer(self, call: Call, timer: SessionTimer | None, resp: Any) -> None:
        """Put the timer in the 2xx and (re)start the wait for the caller's next refresh."""
        if call.expiry is not None:
            call.expiry.cancel()
            call.expiry = None
        call.session_timer = timer
        if timer is None:
            return
        add_header(resp, "Session-Expires", timer.header)
        if timer.require_timer:
            add_header(resp, "Require", "timer")
            call.expiry = Timeout(self._session_expired, timer.bye_after, 1, call)
        else:
            call.expiry = Timeout(self._refresh_session, timer.expires / 2, 1, call)

    def _refresh_session(self, call: Call) -> None:
        """The bridge is the refresher (refresher=uas): at half the interval an UPDATE, or a
        re-INVITE offering the SDP last answered, unchanged with its o= version (RFC 3264 §8),
        when the caller does not allow UPDATE. The session expires at the full interval
        unless a 2xx comes first (RFC 4028 §10)."""
        call.expiry = None
        timer = call.session_timer
        if call.state not in ("answered", "confirmed") or timer is None:
            return
        request, userv = self._dialog_request(call, call.refresh_method)
        # refresher= names a side of the transaction that carries it: in the bridge's own
        # refresh the bridge is the UAC, so it stays the refresher with "uac" (RFC 4028 §7.4).
        add_header(request, "Session-Expires", f"{timer.expires};refresher=uac")
        add_header(request, "Supported", SUPPORTED)
        if call.refresh_method == "INVITE":
            self._add_contact(request, call)
            add_header(request, "Allow", ALLOW)
            request.setBody(MsgBody(call.answer.sdp))
        call.expiry = Timeout(self._session_expired, timer.expires / 2, 1, call)
        try:
            self.tm.newTransaction(request, lambda resp: self._refreshed(call, resp),
                                   userv=userv)
        except Exception as exc:
            self.log(f"could not refresh a call to {call.room.room_code}: {exc}")

    def _refreshed(self, call: Call, resp: Any) -> None:
        """The final answer to the bridge's refresh (sippy ACKs an INVITE's itself): a 2xx
        schedules the next; 408 (Timer B/F included) or 481 ends the call now (RFC 4028
        §10); any other failure leaves the session to expire unrefreshed."""
        code = resp.getSCode()[0]
        timer = call.session_timer
        if code < 200 or call.state not in ("answered", "confirmed") or timer is None:
            return
        if code < 300:
            if call.expiry is not None:
                call.expiry.cancel()
            call.expiry = Timeout(self._refresh_session, timer.expires / 2, 1, call)
        elif code in (408, 481):
            self._send_bye(call, f'SIP ;cause={code} ;text="session refresh failed"')
            self._end(call, "session refresh failed")
        else:
            self.log(f"session refresh of a call to {call.room.room_code} got {code}; "
                     "the session ends when it expires")

    def _session_expired(self, call: Call) -> None:
        """No refresh in time: the caller's (refresher=uac) or the 2xx to the bridge's own."""
        call.expiry = None
        if call.state in ("answered", "confirmed"):
            assert call.session_timer is not None
            self._send_bye(call, 'SIP ;cause=408 ;text="session timer expired after '
                           f'{call.session_timer.expires} s"')
            self._end(call, "session timer expired")

    def _challenge(self, req: Any, stale: bool = False) -> tuple[Any, None, None]:
        cfg = self.config
        mode = 407 if cfg.auth_mode == 407 or cfg.has_fault("407-instead-of-401") else 401
        reason = "Proxy Authentication Required" if mode == 407 else "Unauthorized"
        resp = self._response(req, mode, reason, secrets.token_hex(8))
        if not cfg.has_fault("401-without-challenge") or mode == 407:
            name = "Proxy-Authenticate" if mode == 407 else "WWW-Authenticate"
            for value in self.verifier.challenges(stale=stale):
                add_header(resp, name, value)
        return resp, None, None

    def _authenticate(self, req: Any, headers: list[tuple[str, str]], request_uri: str
                      ) -> tuple[Any, None, None] | None:
        cfg = self.config
        proxy = cfg.auth_mode == 407 or cfg.has_fault("407-instead-of-401")
        wanted = "proxy-authorization" if proxy else "authorization"
        values = [v for n, v in headers if n.lower() == wanted]
        if not values:
            return self._challenge(req)
        if cfg.has_fault("accept-wrong-credentials"):
            return None
        stale = False
        for value in values:
            verdict = self.verifier.verify(value, req.getMethod(), request_uri, self.passwords,
                                           ignore_stale=cfg.has_fault("ignore-stale-nonce"))
            if verdict is Verdict.OK:
                return None
            stale = stale or verdict is Verdict.STALE
        return self._challenge(req, stale=stale)

    def on_invite(self, req: Any, t: Any) -> tuple[Any, Any, Any] | None:
        cfg = self.config
        text = self._raw_text()
        headers = raw_headers(text)
        request_uri = text.split("\r\n", 1)[0].split(" ")[1]
        call_id = str(req.getHFBody("call-id"))
        from_tag = req.getHFBody("from").getTag() or ""
        to_tag = req.getHFBody("to").getTag()
        cseq = req.getHFBody("cseq").getCSeqNum()
        if to_tag:
            return self.on_reinvite(req, t, call_id, from_tag, to_tag, cseq)
        existing = self.calls.get((call_id, from_tag))
        if existing is not None and existing.invite_cseq == cseq:
            return self._final(req, 482, "Loop Detected")
        unsupported = self._unsupported_require(headers)
        if unsupported:
            return self._final(req, 420, "Bad Extension",
                               (("Unsupported", ", ".join(unsupported)),))
        if req.body is not None and req.body.getType() != "application/sdp":
            return self._final(req, 415, "Unsupported Media Type", (("Accept", ACCEPT),))
        denied = self._authenticate(req, headers, request_uri)
        if denied is not None:
            return denied
        room_code = req.getRURI().username or ""
        room = cfg.room(room_code)
        if room is None or not room.enabled:
            return self._final(req, cfg.unknown_room_status,
                               REASONS.get(cfg.unknown_room_status, "Not Found"))
        timer = self._session_timer(req)
        if isinstance(timer, tuple):
            return timer
        if self.stopping or len(self.calls) >= cfg.max_calls:
            reason = {486: "Busy Here", 480: "Temporarily Unavailable"}.get(
                cfg.capacity_status, "Service Unavailable")
            return self._final(req, cfg.capacity_status, reason,
                               (("Retry-After", str(cfg.retry_after)),))
        if req.body is None:
            return self._final(req, 488, "Not Acceptable Here",
                               (("Warning", '399 sipharness "an SDP offer is required"'),))
        media = self.media.open() if self.media is not None else None
        if self.media is not None and media is None:
            return self._final(req, 503, "Service Unavailable", (("Retry-After", "1"),))
        session_id = int(time.time() * 1000) % 10**10
        offer_text = req.body.localStr()
        try:
            answer = build_answer(parse_offer(offer_text), codecs=cfg.codecs, address=cfg.host,
                                  rtp_port=media.port if media else 9,
                                  session_id=session_id, version=1)
        except OfferError as exc:
            if media is not None and self.media is not None:
                self.media.stop(media)
            code = 488 if exc.status == 488 else 400
            return self._final(req, code, "Not Acceptable Here" if code == 488 else "Bad Request",
                               (("Warning", f'305 sipharness "{exc.reason}"'),))
        identity = caller_identity(headers, keep_last=cfg.mask_keep_last,
                                   mask_char=cfg.mask_char,
                                   case_sensitive=cfg.has_fault("case-sensitive-headers"),
                                   decode=not cfg.has_fault("no-percent-decode"),
                                   mask=not cfg.has_fault("no-masking"),
                                   trust_pai=cfg.trusts_pai_from(str(req.getSource()[0])))
        call = Call(call_id=call_id, from_tag=from_tag, to_tag=secrets.token_hex(8),
                    invite=req, transaction=t, userv=t.userv,
                    source=tuple(req.getSource()), room=room, identity=identity,
                    invite_cseq=cseq, answer=answer, media=media, remote_cseq=cseq,
                    first_sdp=answer.sdp, last_offer=offer_text, session_id=session_id,
                    session_timer=timer, refresh_method=refresh_method(headers))
        self.calls[(call_id, from_tag)] = call
        t.r487.getHFBody("to").setTag(call.to_tag)
        add_header(t.r487, "Server", SERVER)
        t.cancel_cb = lambda rtime, creq: self.on_cancel(call)
        t.noack_cb = lambda: self.on_no_ack(call)
        if cfg.has_fault("cancel-ignored"):
            t.r487 = None
            t.cancel_cb = None
        if not cfg.has_fault("no-100-trying"):
            self.tm.sendResponse(self._response(req, 100, "Trying"), t)
        self.tm.sendResponse(self._response(req, 180, "Ringing", call.to_tag), t)
        if cfg.answer_delay > 0:
            call.answer_timer = Timeout(self._answer, cfg.answer_delay, 1, call)
        else:
            self._answer(call)
        return None

    def _answer(self, call: Call) -> None:
        call.answer_timer = None
        if call.state != "proceeding":
            return
        cfg = self.config
        tag = secrets.token_hex(8) if cfg.has_fault("to-tag-changes") else call.to_tag
        resp = self._response(call.invite, 200, "OK", tag, body=call.answer.sdp)
        self._add_contact(resp, call)
        add_header(resp, "Allow", ALLOW)
        self._arm_session_timer(call, call.session_timer, resp)
        call.state = "answered"
        call.final_status = 200
        self.tm.sendResponse(resp, call.transaction, ack_cb=lambda ack: self.on_ack(call))
        self._join(call)

    def _add_contact(self, resp: Any, call: Call) -> None:
        transport = call.userv.transport
        host, port = call.userv.getSIPaddr()[0]
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        param = "" if transport == "udp" else f";transport={transport}"
        add_header(resp, "Contact", f"<sip:{call.room.room_code}@{host}:{port}{param}>")

    def _join(self, call: Call) -> None:
        cfg = self.config
        self.answered += 1
        call.peer = Peer(room_id=call.room.room_id, room_name=call.room.room_name,
                         session_id=str(uuid.uuid4()), peer_id=str(uuid.uuid4()),
                         user_id=call.identity.user_id, user_name=call.identity.user_name,
                         role=call.room.role, joined_at=time.time(), call_id=call.call_id)
        self._roster_change("join", call.peer)
        if self.media is not None and call.media is not None:
            remote = None
            if call.answer.remote_address and call.answer.remote_port:
                remote = (call.answer.remote_address, call.answer.remote_port)
            self.media.start(call.media, remote, call.answer.payload_type, call.answer.codec)
        if self.webhooks is not None:
            self.webhooks.send(envelope("peer.join.success", call.peer, cfg.app_id,
                                        cfg.account_id))

    def _roster_change(self, op: str, peer: Peer) -> None:
        if op == "join":
            self.roster.join(peer)
        else:
            self.roster.leave(peer)
        if self.roster_events:
            print(f"ROSTER {op} " + json.dumps(asdict(peer)), file=self.out, flush=True)

    def answered_invite(self, cancel: Any) -> bool:
        """True when ``cancel`` matches an INVITE this bridge has already answered with 2xx."""
        call = self.calls.get((str(cancel.getHFBody("call-id")),
                               cancel.getHFBody("from").getTag() or ""))
        return (call is not None and call.state in ("answered", "confirmed")
                and call.invite.getHFBody("via").getBranch()
                == cancel.getHFBody("via").getBranch())

    def cancel_ok(self, cancel: Any) -> Any:
        """The 200 to a CANCEL that came after the final answer (RFC 3261 §9.2: no effect)."""
        call = self.calls[(str(cancel.getHFBody("call-id")),
                           cancel.getHFBody("from").getTag() or "")]
        return self._response(cancel, 200, "OK", call.to_tag)

    def _check_rtp(self) -> None:
        """End confirmed calls whose caller has sent no RTP for media.rtp_timeout since the ACK
        or its last packet (DLG-13)."""
        limit = self.config.rtp_timeout or 0.0
        now = time.monotonic()
        for call in list(self.calls.values()):
            if call.state == "confirmed" and call.media is not None \
                    and now - call.media.last_rx > limit:
                self._send_bye(call, f'SIP ;cause=408 ;text="no RTP for {limit:g} s"')
                self._end(call, "rtp timeout")

    def on_ack(self, call: Call) -> None:
        if call.state == "answered":
            call.state = "confirmed"
            if call.media is not None:  # the no-RTP clock (DLG-13) runs from the ACK on
                call.media.last_rx = time.monotonic()

    def on_cancel(self, call: Call) -> None:
        if call.state != "proceeding":
            return
        if call.answer_timer is not None:
            call.answer_timer.cancel()
        call.final_status = 487
        self._end(call, "cancelled")

    def on_no_ack(self, call: Call) -> None:
        if call.state == "answered":
            self._send_bye(call, 'SIP ;cause=408 ;text="no ACK for the 2xx"')
            self._end(call, "no ACK")

    def on_update(self, req: Any, t: Any) -> tuple[Any, Any, Any] | None:
        """UPDATE in a dialog (RFC 3311): a session refresh, with or without a new offer."""
        return self.on_reinvite(req, t, str(req.getHFBody("call-id")),
                                req.getHFBody("from").getTag() or "",
                                req.getHFBody("to").getTag() or "",
                                req.getHFBody("cseq").getCSeqNum())

    def on_reinvite(self, req: Any, t: Any, call_id: str, from_tag: str, to_tag: str,
                    cseq: int) -> tuple[Any, Any, Any] | None:
        """A re-INVITE or UPDATE in the dialog: new offer answered, session timer refreshed."""
        call = self.calls.get((call_id, from_tag))
        if call is not None and call.to_tag == to_tag and call.state == "proceeding":
            resp = self._response(req, 500, "Server Internal Error", call.to_tag)
            add_header(resp, "Retry-After", str(secrets.randbelow(11)))
            return resp, None, None
        if call is None or call.to_tag != to_tag or call.state not in ("answered", "confirmed"):
            return self._final(req, 481, "Call/Transaction Does Not Exist")
        if cseq <= call.remote_cseq:
            return self._final(req, 500, "Server Internal Error")
        call.remote_cseq = cseq
        timer = self._session_timer(req, call.to_tag)
        if isinstance(timer, tuple):
            return timer
        sdp: str | None
        if req.body is None:
            sdp = call.answer.sdp if req.getMethod() == "INVITE" else None
        elif self.config.has_fault("reinvite-old-sdp"):
            sdp = call.first_sdp
        else:
            offer_text = req.body.localStr()
            if offer_text != call.last_offer:
                try:
                    answer = build_answer(parse_offer(offer_text), codecs=self.config.codecs,
                                          address=self.config.host,
                                          rtp_port=call.media.port if call.media else 9,
                                          session_id=call.session_id,
                                          version=call.sdp_version + 1)
                except OfferError as exc:
                    resp = self._response(req, 488, "Not Acceptable Here", call.to_tag)
                    add_header(resp, "Warning", f'305 sipharness "{exc.reason}"')
                    return resp, None, None
                if answer.sdp != call.answer.sdp:
                    call.sdp_version += 1
                    call.answer = answer
                    if self.media is not None and call.media is not None:
                        remote = (answer.remote_address, answer.remote_port) \
                            if answer.remote_address else None
                        self.media.update(call.media, remote, answer.payload_type, answer.codec)
                call.last_offer = offer_text
            sdp = call.answer.sdp
        resp = self._response(req, 200, "OK", call.to_tag, body=sdp)
        self._add_contact(resp, call)
        self._arm_session_timer(call, timer, resp)
        return resp, None, None

    def on_bye(self, req: Any) -> tuple[Any, Any, Any]:
        call_id = str(req.getHFBody("call-id"))
        from_tag = req.getHFBody("from").getTag() or ""
        to_tag = req.getHFBody("to").getTag()
        call = self.calls.get((call_id, from_tag))
        if call is None or call.to_tag != to_tag or call.state not in ("answered", "confirmed"):
            return self._final(req, 481, "Call/Transaction Does Not Exist")
        cseq = req.getHFBody("cseq").getCSeqNum()
        if cseq <= call.remote_cseq:
            return self._final(req, 500, "Server Internal Error")
        call.remote_cseq = cseq
        self._end(call, "peer left")
        resp = self._response(req, 200, "OK", call.to_tag)
        return resp, None, None

    # ----- ending calls
    def _dialog_request(self, call: Call, method: str) -> tuple[Any, Any]:
        """A new request from the bridge in the call's dialog, and the server to send it on."""
        inv = call.invite
        contact_url = None
        if inv.countHFs("contact") > 0:
            try:
                contact_url = inv.getHFBody("contact").getUrl().getCopy()
            except Exception:
                contact_url = None
        ruri = contact_url or SipURL(host=call.source[0], port=call.source[1])
        to = SipTo(address=inv.getHFBody("from").getUri().getCopy())
        fr0m = SipFrom(address=inv.getHFBody("to").getUri().getCopy())
        fr0m.setTag(call.to_tag)
        call.local_cseq += 1
        transport = call.userv.transport
        target = (call.source, transport)
        req = SipRequest(method=method, ruri=ruri, to=to, fr0m=fr0m,
                         callid=inv.getHFBCopy("call-id"), cseq=call.local_cseq,
                         target=target)
        return req, call.userv if transport != "udp" else self.udp

    def _send_bye(self, call: Call, reason: str) -> None:
        bye, userv = self._dialog_request(call, "BYE")
        add_header(bye, "Reason", reason)
        try:
            self.tm.newTransaction(bye, lambda resp: None, userv=userv)
        except Exception as exc:
            self.log(f"could not send BYE for a call to {call.room.room_code}: {exc}")

    def _end(self, call: Call, reason: str) -> None:
        if call.state == "ended":
            return
        call.state = "ended"
        self.calls.pop((call.call_id, call.from_tag), None)
        if call.expiry is not None:
            call.expiry.cancel()
            call.expiry = None
        if call.media is not None and self.media is not None:
            self.media.stop(call.media)
        if call.peer is not None:
            self._roster_change("leave", call.peer)
            if self.webhooks is not None and not self.config.has_fault("no-leave-webhook"):
                self.webhooks.send(envelope("peer.leave.success", call.peer, self.config.app_id,
                                            self.config.account_id, left_at=time.time(),
                                            reason=reason))
        number = mask_number(call.identity.number, self.config.mask_keep_last,
                             self.config.mask_char)
        self.log(f"call room={call.room.room_code} caller={number or '(withheld)'} "
                 f"user_name={call.identity.user_name!r} status={call.final_status} "
                 f"duration={time.monotonic() - call.started:.1f}s reason={reason!r} "
                 f"transport={call.userv.transport}")

    # ----- lifecycle
    def request_stop(self) -> None:
        """Begin a clean stop: refuse new calls, BYE the calls that are up, then leave the loop."""
        if self.stopping:
            return
        self.stopping = True
        calls = list(self.calls.values())
        for call in calls:
            if call.state in ("answered", "confirmed"):
                self._send_bye(call, 'SIP ;cause=503 ;text="bridge shutting down"')
                self._end(call, "bridge shutting down")
            elif call.state == "proceeding":
                if call.answer_timer is not None:
                    call.answer_timer.cancel()
                resp = self._response(call.invite, 503, "Service Unavailable", call.to_tag)
                call.final_status = 503
                with contextlib.suppress(ValueError):
                    self.tm.sendResponse(resp, call.transaction)
                self._end(call, "bridge shutting down")
        if calls:
            Timeout(self._leave_loop, 0.3, 1)
        else:
            self._leave_loop()

    def _leave_loop(self) -> None:
        ED2.breakLoop(0)

    def close(self, drain_timeout: float = 15.0) -> None:
        if self.webhooks is not None:
            if not self.webhooks.drain(drain_timeout):
                self.log("some webhooks were not delivered before the stop")
            self.webhooks.close()
        for listener in self.listeners:
            listener.shutdown()
        if self.roster_api is not None:
            self.roster_api.close()
        if self.media is not None:
            self.media.close()


def serve(config: BridgeConfig, out: TextIO = sys.stdout, err: TextIO = sys.stderr,
          roster_events: bool = False) -> int:
    """Run the bridge until SIGTERM/SIGINT; print one READY line with the bound addresses.

    With ``roster_events`` every join/leave is also printed as a ``ROSTER`` line (for the
    parent of worker processes, which serves the roster API for all of them)."""
    bridge = Bridge(config, out, err, roster_events)
    ED2.regSignal(signal.SIGTERM, bridge.request_stop)
    ED2.regSignal(signal.SIGINT, bridge.request_stop)
    print("READY " + json.dumps(bridge.ready_info()), file=out, flush=True)
    try:
        ED2.loop(freq=1000.0)
    finally:
        bridge.close()
    if bridge.flood.dropped:
        bridge.log(f"rate limit: {bridge.flood.dropped} new INVITEs dropped in all")
    bridge.log(f"bridge stopped after {bridge.answered} answered calls")
    return 0

"""The user agent: transports, one deadline scheduler, and the calls it places (by Call-ID).

One ``Agent`` serves one call (conformance runner, ``sipharness call``) or thousands (a
Locust worker): in shared-socket mode every call uses one socket and one receive greenlet,
messages are dispatched by Call-ID, and all calls' timers share one greenlet.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import Sequence
from typing import Literal

import gevent

from sipharness import __version__
from sipharness.agent.call import (
    Call,
    CallError,
    CallState,
    CallTimeout,
    HeaderItem,
    NoChallenge,
)
from sipharness.agent.media import default_offer
from sipharness.net.timers import DeadlineScheduler
from sipharness.net.transport import (
    HostPort,
    Received,
    Transport,
    TransportError,
    open_transport,
    resolve,
)
from sipharness.report.redact import register_secret
from sipharness.sip.digest import Credentials, DigestError, WrongVariant, parse_challenges
from sipharness.sip.message import Request, Response, build_response, new_call_id, new_tag
from sipharness.sip.timers import TimerConfig
from sipharness.sip.transaction import TransactionState
from sipharness.sip.uri import SipURI, parse_uri

log = logging.getLogger(__name__)

SocketMode = Literal["shared", "per_call"]
TransportKind = Literal["udp", "tcp", "tls"]
DefaultOffer = Literal["default"]
"""``sdp_offer="default"``: offer the default audio SDP (PCMU, PCMA, telephone-event)."""

MAX_CHALLENGES = 3
"""dial() answers at most this many challenges (a first one, then stale=true renewals)."""


def room_uri(room_code: str, host: str, port: int | None = None, *,
             headers: Sequence[tuple[str, str]] = ()) -> str:  # fmt: skip
    """``sip:ROOM@HOST[:PORT]`` (IPv6 hosts bracketed), with ``?headers`` when given."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    uri = SipURI("sip", room_code, None, host, port, {}, list(headers))
    return str(uri)


class Agent:
    """Places calls over one transport kind; see ``dial`` (easy path) and ``new_call``
    (step by step). ``transport`` is a kind, or an unstarted Transport to use as the shared
    socket (the agent starts it and closes it)."""

    MAX_STRAYS = 1000

    def __init__(
        self,
        transport: TransportKind | Transport = "udp",
        *,
        local_host: str = "127.0.0.1",
        local_port: int = 0,
        socket_mode: SocketMode = "shared",
        timers: TimerConfig | None = None,
        tls_client_context: ssl.SSLContext | None = None,
        tls_server_context: ssl.SSLContext | None = None,
        tls_server_name: str | None = None,
        connect_timeout: float = 5.0,
        from_user: str = "sipharness",
        user_agent: str = f"sipharness/{__version__}",
        default_wait: float | None = None,
    ) -> None:
        given = transport if isinstance(transport, Transport) else None
        kind = given.name.lower() if given is not None else transport
        if kind not in ("udp", "tcp", "tls"):
            raise ValueError(f"unknown transport {transport!r}: use udp, tcp or tls")
        if socket_mode not in ("shared", "per_call") or (given and socket_mode != "shared"):
            raise ValueError("socket_mode is 'shared' or 'per_call' (shared for a given transport)")
        self.kind: TransportKind = kind  # type: ignore[assignment]
        self.local_host = local_host.strip("[]")
        self.socket_mode: SocketMode = socket_mode
        self.timers = timers or TimerConfig()
        self.from_user = from_user
        self.user_agent = user_agent
        self.default_wait = default_wait if default_wait is not None else 64 * self.timers.t1 + 1
        self.tls_client_context = tls_client_context
        self.tls_server_context = tls_server_context
        self.tls_server_name = tls_server_name
        self.connect_timeout = connect_timeout
        self.scheduler = DeadlineScheduler()
        self.calls: dict[str, Call] = {}
        self.strays: list[Received] = []
        """Messages for no known call (the first ``MAX_STRAYS`` are kept)."""
        self.transport: Transport | None = None
        self._retiring: set[Transport] = set()
        if given is not None:
            self.transport = given.start(functools.partial(self._dispatch, transport=given))
        elif socket_mode == "shared":
            self.transport = self._open(local_port)

    def _open(self, port: int) -> Transport:
        transport = open_transport(
            self.kind, self.local_host, port, client_context=self.tls_client_context,
            server_context=self.tls_server_context, server_name=self.tls_server_name,
            connect_timeout=self.connect_timeout)  # fmt: skip
        return transport.start(functools.partial(self._dispatch, transport=transport))

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every call, every socket and the timer greenlet."""
        for call in list(self.calls.values()):
            call.close()
        for transport in list(self._retiring):
            transport.close()
        self._retiring.clear()
        if self.transport is not None:
            self.transport.close()
        self.scheduler.close()

    def _retire(self, transport: Transport) -> None:
        """Close a closed call's own transport one T1 from now (or at ``close()``)."""
        self._retiring.add(transport)

        def close_later() -> None:
            self._retiring.discard(transport)
            transport.close()

        gevent.spawn_later(self.timers.t1, close_later)

    # ------------------------------------------------------------------ calls

    def new_call(
        self,
        target: str,
        *,
        destination: HostPort | None = None,
        credentials: Credentials | None = None,
        headers: Sequence[HeaderItem] = (),
        sdp_offer: bytes | DefaultOffer | None = "default",
        from_uri: str | None = None,
        display_name: str | None = None,
        call_id: str | None = None,
    ) -> Call:
        """A call to ``target`` (a sip:/sips: URI; its ``?headers`` become header fields,
        before ``headers``) with nothing sent yet. ``destination`` overrides where messages
        go (default: the URI's host and port). ``sdp_offer`` None sends no body."""
        uri = parse_uri(target)
        if uri.scheme == "tel":
            raise ValueError("dial a sip: or sips: URI (tel: needs a destination host)")
        remote = destination or resolve(uri.host, uri.port or (5061 if self.kind == "tls"
                                                               else 5060))  # fmt: skip
        transport = self.transport if self.transport is not None else self._open(0)
        request_uri = str(uri.without_headers())
        sip_host = transport.sent_by.rsplit(":", 1)[0]
        from_addr = from_uri or f"sip:{self.from_user}@{sip_host}"
        shown = f'"{display_name}" ' if display_name else ""
        if credentials is not None:
            register_secret(credentials.password)
        offer: bytes | None
        if sdp_offer == "default":
            offer = default_offer(transport.local[0])
        else:
            offer = sdp_offer if isinstance(sdp_offer, bytes) else None
        call = Call(
            self,
            transport,
            remote=remote,
            request_uri=request_uri,
            to_address=f"<{request_uri}>",
            from_address=f"{shown}<{from_addr}>;tag={new_tag()}",
            contact_user=self.from_user,
            call_id=call_id or new_call_id(sip_host.strip("[]")),
            credentials=credentials,
            headers=[*uri.headers, *headers],
            sdp_offer=offer,
            owns_transport=self.transport is None,
        )
        self.calls[call.call_id] = call
        return call

    def dial(
        self,
        target: str,
        *,
        credentials: Credentials | None = None,
        headers: Sequence[HeaderItem] = (),
        sdp_offer: bytes | DefaultOffer | None = "default",
        auth_variant: WrongVariant | None = None,
        destination: HostPort | None = None,
        from_uri: str | None = None,
        display_name: str | None = None,
        within: float | None = None,
    ) -> Call:
        """Place a call and wait for its final answer: answer 401/407 (once, and again on
        ``stale=true``), ACK a 2xx. Never raises for SIP outcomes: read ``call.outcome``
        (``answered``, ``status``, ``ending``, ``failure``)."""
        call = self.new_call(target, destination=destination, credentials=credentials,
                             headers=headers, sdp_offer=sdp_offer, from_uri=from_uri,
                             display_name=display_name)  # fmt: skip
        outcome = call.outcome
        try:
            call.send_invite()
            response = call.expect_response(within=within)
            while response.status in (401, 407):
                if not self._may_answer(call, response):
                    return call
                call.answer_challenge(response, variant=auth_variant)
                response = call.expect_response(within=within)
            if 200 <= response.status < 300:
                call.ack()
                outcome.ending = "answered"
            elif response.status in (403, 401, 407) and outcome.challenged:
                outcome.ending = "auth_failed"
                outcome.failure = (f"{response.status} {response.reason} after answering the "
                                   "challenge: credentials refused")  # fmt: skip
            else:
                outcome.ending = "rejected"
                outcome.failure = f"call rejected: {response.status} {response.reason}"
        except NoChallenge as exc:
            outcome.ending, outcome.failure = "no_challenge", str(exc)
        except CallTimeout as exc:
            outcome.ending = outcome.ending or "timeout"
            outcome.failure = outcome.failure or f"timeout: {exc}"
            self._give_up_ringing(call)
        except CallError as exc:
            outcome.ending = outcome.ending or "transport_error"
            outcome.failure = outcome.failure or str(exc)
        return call

    def _give_up_ringing(self, call: Call) -> None:
        """After a wait ran out on a call that is still ringing, CANCEL it as a trunk does
        (and ACK the 487) instead of leaving the far end ringing."""
        tx = call.invite_tx
        if call.state is not CallState.CALLING or tx is None:
            return
        if tx.state is not TransactionState.PROCEEDING:
            return
        try:
            response = call.hangup(within=4 * self.timers.t1)
        except CallError:
            return
        if response is not None and 200 <= response.status < 300:
            call.outcome.failure += " (answered while we cancelled; hung up with BYE)"

    def _may_answer(self, call: Call, response: Response) -> bool:
        """Whether dial() answers this challenge; sets the outcome when it does not."""
        outcome = call.outcome
        if call.credentials is None:
            outcome.ending = "auth_failed"
            outcome.failure = f"challenged with {response.status} but no credentials were given"
        elif outcome.challenged and not _stale(response):
            outcome.ending = "auth_failed"
            outcome.failure = (f"{response.status} {response.reason} again after answering the "
                               "challenge: credentials refused")  # fmt: skip
        elif outcome.challenged >= MAX_CHALLENGES:
            outcome.ending = "auth_failed"
            outcome.failure = f"still challenged after {MAX_CHALLENGES} answers (stale nonces)"
        else:
            return True
        return False

    def finish(self, call: Call, *, within: float | None = None) -> Call:
        """Tear an answered call down with BYE and settle its outcome (``completed`` or
        ``bye_failed``); a call the far end already ended counts as completed."""
        outcome = call.outcome
        if outcome.ending != "answered":
            return call
        try:
            if outcome.torn_down_by != "far end":
                response = call.bye(within=within)
                if not 200 <= response.status < 300:
                    outcome.ending = "bye_failed"
                    outcome.failure = f"BYE answered {response.status} {response.reason}"
                    return call
            outcome.ending = "completed"
        except CallTimeout as exc:
            outcome.ending, outcome.failure = "timeout", f"timeout: {exc}"
        except CallError as exc:
            outcome.ending, outcome.failure = "bye_failed", str(exc)
        return call

    def options(self, target: str, *, destination: HostPort | None = None,
                within: float | None = None) -> Response:
        """Send one OPTIONS outside any dialog (a liveness probe) and return its answer."""
        call = self.new_call(target, destination=destination, sdp_offer=None)
        try:
            return call.options(within=within)
        finally:
            call.close()

    # ------------------------------------------------------------------ dispatch

    def _forget(self, call: Call) -> None:
        if self.calls.get(call.call_id) is call:
            del self.calls[call.call_id]
        self.scheduler.disarm(call)

    def _dispatch(self, item: Received, *, transport: Transport) -> None:
        message = item.message
        call = self.calls.get(message.call_id or "") if message is not None else None
        if call is not None:
            call.on_received(item)
            return
        if len(self.strays) < self.MAX_STRAYS:
            self.strays.append(item)
        if isinstance(message, Request) and message.method not in ("ACK", "CANCEL"):
            self._answer_stray(item, message, transport)

    def _answer_stray(self, item: Received, request: Request, transport: Transport) -> None:
        """Out-of-dialog OPTIONS → 200; any other request for no known call → 481."""
        if request.method == "OPTIONS":
            response = build_response(request, 200, headers=[("Allow", "INVITE, ACK, CANCEL, "
                                                              "BYE, OPTIONS")], to_tag=new_tag())
        else:
            response = build_response(request, 481, to_tag=new_tag())
        target = item.source
        via = request.top_via
        if via is not None and via.rport is None and item.transport == "UDP":
            target = (item.source[0], via.port or 5060)
        try:
            transport.send(response.to_bytes(), target, flow=item.flow)
        except TransportError as exc:
            log.info("could not answer a stray %s: %s", request.method, exc)


def _stale(response: Response) -> bool:
    """True when a 401/407 says ``stale=true`` (the nonce expired, the credentials did not)."""
    try:
        return any(c.stale for c in parse_challenges(response))
    except DigestError:
        return False

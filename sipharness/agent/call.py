"""One call placed by the agent, driven step by step: INVITE, challenge, ACK, re-INVITE, BYE...

A :class:`Call` owns a sans-I/O ``TransactionLayer`` and a ``Dialog``; the agent's transport
feeds it received messages and its deadline scheduler fires its timers. Every method that
waits (``expect_response``, ``bye``...) blocks only the calling greenlet.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING

import gevent
import gevent.event

from sipharness.agent.media import MediaEndpoint, remote_media, with_direction
from sipharness.agent.record import CallRecord, MessageEntry, Outcome
from sipharness.net.transport import Connection, HostPort, Received, Transport, TransportError
from sipharness.sip.dialog import Dialog, DialogState, create_cancel
from sipharness.sip.digest import (
    Credentials,
    DigestClient,
    DigestError,
    WrongVariant,
    choose_challenge,
    parse_challenges,
)
from sipharness.sip.events import (
    Event,
    FinalReceived,
    MalformedMessage,
    ProvisionalReceived,
    RequestReceived,
    ResponseReceived,
    ResponseRepeated,
    StrayResponse,
    TransactionTimedOut,
)
from sipharness.sip.message import (
    Request,
    Response,
    build_request,
    build_response,
    new_via,
)
from sipharness.sip.transaction import (
    ClientInviteTransaction,
    ClientTransaction,
    ServerTransaction,
    Transaction,
    TransactionLayer,
    TransactionStateError,
)

if TYPE_CHECKING:
    from sipharness.agent.useragent import Agent

HeaderItem = tuple[str, str] | bytes
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, NOTIFY"
Destination = tuple[HostPort, Connection | None]


class CallError(Exception):
    """A step of the call could not be done as asked."""


class CallTimeout(CallError):
    """Nothing suitable arrived in time (a wait ran out, or Timer B/F fired)."""


class UnexpectedResponse(CallError):
    """A final response other than the ones expected; ``response`` is it."""

    def __init__(self, response: Response, expected: Collection[int] | None) -> None:
        wanted = ", ".join(str(s) for s in sorted(expected)) if expected else "a final response"
        super().__init__(f"expected {wanted}, got {response.status} {response.reason}")
        self.response = response
        self.expected = expected


class NoChallenge(CallError):
    """A 401/407 without a Digest challenge this client can answer."""


class CallTransportError(CallError):
    """A message could not be sent (connection refused or reset, TLS failure)."""


class CallState(StrEnum):
    """Where the call is, from the caller's side."""

    IDLE = "idle"  # nothing sent yet
    CALLING = "calling"  # INVITE sent, no final answer yet
    ANSWERED = "answered"  # 2xx received, ACK not sent (withheld)
    CONFIRMED = "confirmed"  # 2xx acknowledged: the call is up
    TERMINATING = "terminating"  # BYE sent, no answer yet
    TERMINATED = "terminated"  # BYE answered, far end hung up, or the INVITE failed


class Call:
    """One dialog-forming INVITE and everything after it. Made by ``Agent.new_call``."""

    def __init__(
        self,
        agent: Agent,
        transport: Transport,
        *,
        remote: HostPort,
        request_uri: str,
        to_address: str,
        from_address: str,
        contact_user: str,
        call_id: str,
        credentials: Credentials | None,
        headers: Sequence[HeaderItem],
        sdp_offer: bytes | None,
        owns_transport: bool,
    ) -> None:
        self.agent = agent
        self.transport = transport
        self.remote = remote
        self.request_uri = request_uri
        self.to_address = to_address
        self.from_address = from_address
        self.contact_user = contact_user
        self._sent_by = ""
        self.call_id = call_id
        self.credentials = credentials
        self.headers = list(headers)
        self.sdp_offer = sdp_offer
        self.owns_transport = owns_transport
        self.auto_answer = True
        """Answer requests from the far end (BYE, OPTIONS, re-INVITE...) automatically."""
        self.state = CallState.IDLE
        self.record = CallRecord(call_id, request_uri, transport.name)
        self.layer = TransactionLayer(agent.timers, reliable=transport.reliable,
                                      destination=(remote, None))  # fmt: skip
        self.digest = DigestClient()
        self.dialog: Dialog | None = None
        self.invite: Request | None = None
        self.invite_tx: ClientInviteTransaction | None = None
        self.final: Response | None = None
        self.answer: Response | None = None
        self.local_sdp = sdp_offer
        self.cseq = 0
        self.closed = False
        self._first_invite_at: float | None = None
        self._acks: dict[int, Request] = {}
        self._last_tx: dict[str, ClientTransaction] = {}
        self._timed_out: dict[Transaction, str] = {}
        self._responses: list[tuple[MessageEntry, ResponseReceived]] = []
        self._response_cursor = 0
        self._requests: list[tuple[MessageEntry, ServerTransaction | None]] = []
        self._request_cursor = 0
        self._transport_error = ""
        self._wake = gevent.event.Event()

    def __repr__(self) -> str:
        return f"<Call {self.call_id} {self.state}>"

    def __enter__(self) -> Call:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ what we know

    @property
    def outcome(self) -> Outcome:
        """Shortcut for ``record.outcome``."""
        return self.record.outcome

    @property
    def remote_media(self) -> MediaEndpoint | None:
        """The far end's RTP address, port and payload from the SDP of its 2xx (the seam
        where an RTP session attaches), None before an answer with SDP."""
        if self.answer is None or not self.answer.body:
            return None
        return remote_media(self.answer.body)

    @property
    def local(self) -> HostPort:
        return self.transport.local

    # ------------------------------------------------------------------ building

    @property
    def sent_by(self) -> str:
        """Our Via sent-by (``host:port``), fixed for the call once first asked for."""
        if not self._sent_by:
            try:
                self._sent_by = self.transport.sent_by_for(self.remote)
            except TransportError as exc:
                self._broken(str(exc))
                raise CallTransportError(str(exc)) from exc
        return self._sent_by

    @property
    def contact(self) -> str:
        """Our Contact: ``<sip:user@sent-by;transport=tcp>`` (no transport= for UDP; a
        sips: URI when we dial one)."""
        kind = self.transport.name.lower()
        if self.request_uri.lower().startswith("sips:"):
            return f"<sips:{self.contact_user}@{self.sent_by}>"  # RFC 3261 §8.1.1.8
        param = "" if kind == "udp" else f";transport={kind}"
        return f"<sip:{self.contact_user}@{self.sent_by}{param}>"

    def _via(self) -> str:
        return new_via(self.transport.name, self.sent_by)

    def build_invite(
        self,
        *,
        sdp: bytes | None = None,
        headers: Sequence[HeaderItem] | None = None,
        authorization: tuple[str, str] | None = None,
    ) -> Request:
        """The next initial INVITE (new branch, CSeq + 1, same Call-ID and From-tag), not sent.

        ``sdp`` defaults to the call's offer; ``headers`` to the call's extra headers.
        """
        self.cseq += 1
        body = self.sdp_offer if sdp is None else sdp
        fields: list[HeaderItem] = [
            ("Via", self._via()),
            ("Max-Forwards", "70"),
            ("From", self.from_address),
            ("To", self.to_address),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} INVITE"),
            ("Contact", self.contact),
            ("User-Agent", self.agent.user_agent),
            ("Allow", ALLOW),
        ]
        if authorization is not None:
            fields.append(authorization)
        fields.extend(self.headers if headers is None else headers)
        if body:
            fields.append(("Content-Type", "application/sdp"))
        return build_request("INVITE", self.request_uri, fields, body or b"")

    def build_request(self, method: str, headers: Sequence[HeaderItem] = (),
                      body: bytes = b"", *, content_type: str | None = None) -> Request:
        """A request in the dialog (or, before one exists, outside it with this Call-ID)."""
        extra = list(headers)
        if body and content_type:
            extra.append(("Content-Type", content_type))
        if self.dialog is not None:
            return self.dialog.create_request(method, extra, body, via=self._via())
        self.cseq += 1
        fields: list[HeaderItem] = [
            ("Via", self._via()),
            ("Max-Forwards", "70"),
            ("From", self.from_address),
            ("To", self.to_address),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} {method.upper()}"),
            ("User-Agent", self.agent.user_agent),
            *extra,
        ]
        return build_request(method.upper(), self.request_uri, fields, body)

    # ------------------------------------------------------------------ sending

    def _now(self) -> float:
        return time.monotonic()

    def send_invite(
        self,
        *,
        sdp: bytes | None = None,
        headers: Sequence[HeaderItem] | None = None,
        authorization: tuple[str, str] | None = None,
    ) -> Request:
        """Build and send the next initial INVITE (see ``build_invite``); return it."""
        invite = self.build_invite(sdp=sdp, headers=headers, authorization=authorization)
        self.send_request(invite)
        return invite

    def send_request(self, request: Request, *,
                     transaction: bool = True) -> ClientTransaction | None:  # fmt: skip
        """Send a prebuilt request. ACK (or ``transaction=False``) goes out once, without a
        transaction; anything else starts a client transaction (retransmissions, timeouts).
        An INVITE becomes the call's current INVITE."""
        self._check_open()
        now = self._now()
        tx: ClientTransaction | None = None
        if request.method == "ACK" or not transaction:
            self.layer.send_stateless(request)
        else:
            tx = self.layer.send_request(request, now)
            self._last_tx[request.method] = tx
            if isinstance(tx, ClientInviteTransaction) and self.dialog is None:
                self.invite, self.invite_tx, self.final = request, tx, None
                if self._first_invite_at is None:
                    self._first_invite_at = now
                if self.state is CallState.IDLE:
                    self.state = CallState.CALLING
        self._flush()
        self._raise_if_broken()
        return tx

    def send_bytes(self, data: bytes, *, remote: HostPort | None = None) -> None:
        """Send exact bytes (malformed ones too) to the far end, outside any transaction."""
        self._check_open()
        self._send(data, ((remote or self.remote), None))
        self._raise_if_broken()

    def retransmit(self, request: Request | None = None) -> None:
        """Send the bytes of ``request`` (default: the last request we sent) again, as is."""
        if request is None:
            sent = [e for e in self.record.entries
                    if e.direction == "sent" and isinstance(e.message, Request)]  # fmt: skip
            if not sent:
                raise CallError("nothing was sent yet")
            data = sent[-1].data
        else:
            data = request.to_bytes()
        self.send_bytes(data)

    def answer_challenge(
        self,
        response: Response | None = None,
        *,
        variant: WrongVariant | None = None,
        credentials: Credentials | None = None,
        qop: str | None = None,
        headers: Sequence[HeaderItem] | None = None,
    ) -> Request:
        """Answer the 401/407 ``response`` (default: the INVITE's last final) by resending its
        request with Authorization (CSeq + 1, new branch). ``variant`` answers wrongly on
        purpose (sipharness.sip.digest.WRONG_VARIANTS); ``headers`` replace the call's extra
        headers on a retried INVITE. Return the request sent."""
        response = response or self.final
        if response is None or response.status not in (401, 407):
            raise CallError("no 401/407 to answer")
        creds = credentials or self.credentials
        if creds is None:
            raise CallError(f"challenged with {response.status} but the call has no credentials")
        try:
            challenge = choose_challenge(parse_challenges(response))
        except DigestError as exc:
            raise NoChallenge(f"{response.status} without a usable challenge: {exc}") from exc
        method = response.cseq[1].upper() if response.cseq else "INVITE"
        self.record.outcome.challenged += 1
        if method == "INVITE" and self.dialog is None:
            body = self.invite.body if self.invite is not None else b""
            auth = self.digest.authorize(challenge, "INVITE", self.request_uri, creds, body,
                                         variant=variant, qop=qop)  # fmt: skip
            return self.send_invite(sdp=body or None, headers=headers, authorization=auth)
        original = self._last_tx.get(method)
        if original is None:
            raise CallError(f"no {method} was sent to resend")
        request = original.request
        auth = self.digest.authorize(challenge, method, request.uri, creds, request.body,
                                     variant=variant, qop=qop)  # fmt: skip
        if self.dialog is not None:
            self.dialog.local_cseq += 1
            number = self.dialog.local_cseq
        else:
            self.cseq += 1
            number = self.cseq
        retry = (request.replace_header("Via", self._via())
                 .replace_header("CSeq", f"{number} {method}")
                 .remove_header(auth[0]).add_header(*auth, before="Content-Length"))  # fmt: skip
        self.send_request(retry)
        return retry

    def ack(self, response: Response | None = None, *, body: bytes = b"",
            headers: Sequence[HeaderItem] = ()) -> Request:
        """ACK the 2xx ``response`` (default: the INVITE's) in the dialog and return the ACK.
        Retransmitted 2xx are re-ACKed automatically afterwards. For a non-2xx the
        transaction already sent the ACK; that ACK is returned."""
        tx = self._last_tx.get("INVITE")
        response = response or (tx.final_response if tx is not None else None)
        if response is None:
            raise CallError("no final response to acknowledge")
        if response.status >= 300:
            if isinstance(tx, ClientInviteTransaction) and tx.ack is not None:
                return tx.ack
            raise CallError(f"the {response.status} was not acknowledged by its transaction")
        if self.dialog is None or tx is None:
            raise CallError("a 2xx without a dialog")
        extra = list(headers)
        if body:
            extra.append(("Content-Type", "application/sdp"))
        ack = self.dialog.create_ack(tx.request, response, body, headers=extra, via=self._via())
        self._acks[response.cseq[0] if response.cseq else 0] = ack
        self.send_request(ack)
        if self.state is CallState.ANSWERED:
            self.state = CallState.CONFIRMED
        return ack

    def cancel(self, headers: Sequence[HeaderItem] = ()) -> Request:
        """CANCEL the pending INVITE (§9.1). Wait for it with ``expect_response(method=
        "CANCEL")`` and for the INVITE's 487 with ``expect_response([487])``."""
        invite_tx = self.invite_tx
        if invite_tx is None:
            raise CallError("no INVITE to cancel")
        self._check_open()
        tx = self.layer.send_request(create_cancel(invite_tx.request, headers), self._now(),
                                     reliable=invite_tx.reliable,
                                     destination=invite_tx.destination)  # fmt: skip
        self._last_tx["CANCEL"] = tx
        self._flush()
        self._raise_if_broken()
        return tx.request

    # ------------------------------------------------------------------ waiting

    def _wait(self, ready: Callable[[], object], within: float | None, what: str) -> object:
        """Block until ``ready()`` returns something truthy; CallTimeout after ``within``."""
        limit = self.agent.default_wait if within is None else within
        deadline = self._now() + limit
        while True:
            self._wake.clear()
            result = ready()
            if result:
                return result
            self._raise_if_broken()
            remaining = deadline - self._now()
            if remaining <= 0:
                raise CallTimeout(f"no {what} within {limit:g} s")
            self._wake.wait(timeout=remaining)

    def expect_response(
        self,
        statuses: int | Collection[int] | None = None,
        *,
        method: str = "INVITE",
        within: float | None = None,
        repeats: bool = False,
    ) -> Response:
        """The next response to ``method``: with ``statuses`` None the next final one;
        otherwise the next whose status is listed (provisionals not listed are skipped, a
        final not listed raises UnexpectedResponse). Repeated finals are skipped unless
        ``repeats``. CallTimeout when ``within`` runs out or the transaction times out."""
        method = method.upper()
        wanted = {statuses} if isinstance(statuses, int) else (
            set(statuses) if statuses is not None else None)  # fmt: skip

        def ready() -> Response | None:
            while self._response_cursor < len(self._responses):
                entry, event = self._responses[self._response_cursor]
                self._response_cursor += 1
                response = event.response
                if (entry.method != method or (entry.repeated and not repeats)):
                    continue
                if wanted is not None and response.status in wanted:
                    return response
                if response.status >= 200:
                    if wanted is None:
                        return response
                    raise UnexpectedResponse(response, wanted)
            tx = self._last_tx.get(method)
            if tx is not None and tx in self._timed_out:
                timer = self._timed_out[tx]
                raise CallTimeout(f"no final response to {method} before Timer {timer} "
                                  f"({64 * self.agent.timers.t1:g} s = 64·T1)")  # fmt: skip
            return None

        result = self._wait(ready, within, f"response to {method}")
        assert isinstance(result, Response)
        return result

    def expect_request(self, method: str | None = None, *, within: float | None = None
                       ) -> Request:  # fmt: skip
        """The next request the far end sent (of ``method`` when given; others skipped)."""

        def ready() -> Request | None:
            while self._request_cursor < len(self._requests):
                entry, _ = self._requests[self._request_cursor]
                self._request_cursor += 1
                msg = entry.message
                if isinstance(msg, Request) and (method is None or msg.method == method.upper()):
                    return msg
            return None

        result = self._wait(ready, within, f"{method or ''} request from the far end".lstrip())
        assert isinstance(result, Request)
        return result

    def respond(self, request: Request, status: int, reason: str | None = None,
                headers: Sequence[HeaderItem] = (), body: bytes = b"") -> Response:
        """Answer a request from the far end (when ``auto_answer`` is off)."""
        for entry, tx in self._requests:
            if entry.message is request and tx is not None:
                response = build_response(request, status, reason, headers, body,
                                          to_tag=self.dialog.local_tag if self.dialog else None)
                self.layer.respond(tx, response, self._now())
                self._flush()
                return response
        raise CallError("that request is not one the far end sent on this call")

    def wait_for(self, predicate: Callable[[MessageEntry], bool], *,
                 within: float | None = None, since: int = 0) -> MessageEntry:
        """The first record entry (index ≥ ``since``) for which ``predicate`` is true,
        waiting for it to arrive; e.g. a 2xx repeated while the ACK is withheld:
        ``call.wait_for(lambda e: e.received and e.status == 200 and e.repeated)``."""

        def ready() -> MessageEntry | None:
            for entry in self.record.entries[since:]:
                if predicate(entry):
                    return entry
            return None

        result = self._wait(ready, within, "matching message")
        assert isinstance(result, MessageEntry)
        return result

    def wait_ended(self, within: float) -> bool:
        """Sleep up to ``within`` seconds; True as soon as the call ended (e.g. far-end BYE)."""
        try:
            self._wait(lambda: self.state is CallState.TERMINATED, within, "end of call")
        except CallTimeout:
            return False
        return True

    # ------------------------------------------------------------------ composite steps

    def bye(self, headers: Sequence[HeaderItem] = (), *, within: float | None = None) -> Response:
        """Send BYE in the dialog and wait for its final response."""
        if self.dialog is None:
            raise CallError("no dialog to end with BYE")
        request = self.build_request("BYE", headers)
        self.state = CallState.TERMINATING
        sent_at = self._now()
        self.send_request(request)
        try:
            response = self.expect_response(method="BYE", within=within)
        finally:
            self.state = CallState.TERMINATED
        if 200 <= response.status < 300:
            self.record.phase("bye_to_200", self._time_of(response) - sent_at)
            self.record.outcome.torn_down_by = self.record.outcome.torn_down_by or "us"
        return response

    def reinvite(self, sdp: bytes | None = None, headers: Sequence[HeaderItem] = (), *,
                 within: float | None = None) -> Response:
        """Send a re-INVITE with ``sdp`` (default: the current local SDP), wait for its final
        response and ACK a 2xx; return the final response."""
        if self.dialog is None:
            raise CallError("no dialog for a re-INVITE")
        body = self.local_sdp if sdp is None else sdp
        request = self.build_request("INVITE", headers, body or b"",
                                     content_type="application/sdp")  # fmt: skip
        tx = self.send_request(request)
        response = self.expect_response(method="INVITE", within=within)
        if 200 <= response.status < 300 and tx is not None:
            ack = self.dialog.create_ack(tx.request, response, via=self._via())
            self._acks[response.cseq[0] if response.cseq else 0] = ack
            self.send_request(ack)
            self.local_sdp = body
            if response.body:
                self.answer = response
        return response

    def hold(self, *, within: float | None = None) -> Response:
        """Put the far end on hold: re-INVITE with ``a=sendonly`` (RFC 3264 §8.4)."""
        return self.reinvite(self._redirected("sendonly"), within=within)

    def resume(self, *, within: float | None = None) -> Response:
        """Take the call off hold: re-INVITE with ``a=sendrecv``."""
        return self.reinvite(self._redirected("sendrecv"), within=within)

    def _redirected(self, direction: str) -> bytes:
        if not self.local_sdp:
            raise CallError(f"the call has no SDP to make {direction}")
        return with_direction(self.local_sdp, direction)

    def options(self, *, within: float | None = None) -> Response:
        """OPTIONS in the dialog (or with this Call-ID before one exists); its final answer."""
        self.send_request(self.build_request("OPTIONS", [("Accept", "application/sdp")]))
        return self.expect_response(method="OPTIONS", within=within)

    def hangup(self, *, within: float | None = None) -> Response | None:
        """End the call whatever its state: BYE when answered, CANCEL while calling."""
        if self.state in (CallState.ANSWERED, CallState.CONFIRMED):
            if self.state is CallState.ANSWERED:
                self.ack()
            return self.bye(within=within)
        if self.state is CallState.CALLING and self.invite_tx is not None:
            self.cancel()
            response = self.expect_response(method="INVITE", within=within)
            if 200 <= response.status < 300:  # the answer crossed our CANCEL
                self.ack()
                return self.bye(within=within)
            if response.status == 487:
                self.record.outcome.ending = self.record.outcome.ending or "cancelled"
            return response
        return None

    def close(self) -> None:
        """Stop the call's timers and forget it. In per-call mode its own socket closes T1
        later, so a far end still finishing the last transaction is not cut off."""
        if self.closed:
            return
        self.closed = True
        self.agent._forget(self)
        if self.owns_transport:
            self.agent._retire(self.transport)

    # ------------------------------------------------------------------ the driver side

    def _check_open(self) -> None:
        if self.closed:
            raise CallError("the call is closed")

    def _raise_if_broken(self) -> None:
        if self._transport_error:
            raise CallTransportError(self._transport_error)

    def _time_of(self, message: Request | Response) -> float:
        for entry in reversed(self.record.entries):
            if entry.parsed is message:
                return entry.time
        return self._now()

    def _send(self, data: bytes, destination: Destination) -> None:
        remote, flow = destination
        try:
            local = self.transport.send(data, remote, flow=flow)
        except TransportError as exc:
            self._broken(str(exc))
            return
        now = self._now()
        seen = any(e.data == data and e.direction == "sent" for e in self.record.entries)
        self.record.entries.append(MessageEntry(
            "sent", now, time.time(), local, remote, self.transport.name, data,
            note="retransmission" if seen else ""))  # fmt: skip

    def _broken(self, reason: str) -> None:
        self._transport_error = reason
        self.record.outcome.ending = self.record.outcome.ending or "transport_error"
        self.record.outcome.failure = self.record.outcome.failure or reason
        self._wake.set()

    def _flush(self) -> None:
        for data, destination in self.layer.data_to_send():
            self._send(data, destination)
        self.agent.scheduler.arm(self, self.layer.next_deadline())

    def on_deadline(self, now: float) -> None:
        """Called by the agent's scheduler when the layer's next timer is due."""
        if self.closed:
            return
        self._handle(self.layer.on_timer(now), None)
        self._flush()
        self._wake.set()

    def on_received(self, item: Received) -> None:
        """Called by the agent for every message with this call's Call-ID."""
        entry = MessageEntry("received", item.time, item.wall, item.local, item.source,
                             item.transport, item.data, item.message, item.error)  # fmt: skip
        self.record.entries.append(entry)
        if item.message is not None and not self.closed:
            events = self.layer.receive(item.message, item.time, (item.source, item.flow))
            self._handle(events, entry)
            self._flush()
        self._wake.set()

    def _handle(self, events: list[Event], entry: MessageEntry | None) -> None:
        for event in events:
            if isinstance(event, ResponseReceived) and entry is not None:
                entry.repeated = isinstance(event, ResponseRepeated)
                self._responses.append((entry, event))
                self._on_response(event)
            elif isinstance(event, StrayResponse) and entry is not None:
                entry.repeated = True
                self._reack(event.response)
            elif isinstance(event, RequestReceived) and entry is not None:
                self._requests.append((entry, event.transaction))
                if self.auto_answer:
                    self._answer_request(event.transaction, event.request)
            elif isinstance(event, TransactionTimedOut):
                self._timed_out[event.transaction] = event.timer
                self.record.notes.append((event.time, f"Timer {event.timer} fired on "
                                                      f"{event.transaction.method}"))  # fmt: skip
            elif isinstance(event, MalformedMessage) and entry is not None:
                entry.error = event.reason

    def _on_response(self, event: ResponseReceived) -> None:
        tx, response = event.transaction, event.response
        if isinstance(event, ResponseRepeated):
            self._reack(response)
            return
        if tx.method != "INVITE" or not isinstance(tx, ClientInviteTransaction):
            return
        initial = tx.request is self.invite
        if initial:
            self._invite_phases(tx, response, event.time)
        if isinstance(event, ProvisionalReceived):
            early = self.dialog is None or self.dialog.state is DialogState.EARLY
            tagged = response.to is not None and response.to.tag
            if initial and early and tagged and response.status > 100:
                self.dialog = Dialog.from_uac(tx.request, response)
            return
        if not isinstance(event, FinalReceived) or not initial:
            return
        self.final = response
        outcome = self.record.outcome
        outcome.status, outcome.reason = response.status, response.reason
        if 200 <= response.status < 300:
            if self.dialog is None or self.dialog.remote_tag != response.to.tag:  # type: ignore[union-attr]
                self.dialog = Dialog.from_uac(tx.request, response)
            else:
                self.dialog.update(response)
            self.answer = response
            outcome.answered = True
            self.state = CallState.ANSWERED
        elif response.status not in (401, 407):
            self.dialog = None
            self.state = CallState.TERMINATED
        else:
            self.dialog = None

    def _invite_phases(self, tx: ClientInviteTransaction, response: Response, now: float) -> None:
        record, status = self.record, response.status
        first = self._first_invite_at if self._first_invite_at is not None else tx.created_at
        authenticated = tx.request.has_header("authorization") or tx.request.has_header(
            "proxy-authorization")  # fmt: skip
        if status == 100 and tx.created_at == first:
            record.phase("invite_to_100", now - first)
        elif status in (401, 407) and tx.created_at == first:
            record.phase("invite_to_401", now - first)
        elif status in (180, 183):
            record.phase("invite_to_180", now - first)
            if authenticated:
                record.phase("auth_invite_to_180", now - tx.created_at)
        elif 200 <= status < 300:
            record.phase("invite_to_200", now - first)
            if authenticated:
                record.phase("auth_invite_to_200", now - tx.created_at)

    def _reack(self, response: Response) -> None:
        """Acknowledge a repeated 2xx to an INVITE we ACKed with the same ACK (§13.2.2.4);
        nothing while the ACK is withheld."""
        cseq = response.cseq
        if not 200 <= response.status < 300 or cseq is None or cseq[1].upper() != "INVITE":
            return
        ack = self._acks.get(cseq[0])
        if ack is not None:
            self.layer.send_stateless(ack)

    def _answer_request(self, tx: ServerTransaction, request: Request) -> None:
        method = request.method
        dialog = self.dialog
        in_dialog = dialog is not None and dialog.matches_request(request)
        headers: list[HeaderItem] = []
        body = b""
        status = 200
        if method == "BYE":
            if dialog is None or not in_dialog:
                status = 481
            else:
                dialog.receive_request(request)
                self.state = CallState.TERMINATED
                outcome = self.record.outcome
                outcome.torn_down_by = outcome.torn_down_by or "far end"
        elif method == "OPTIONS":
            headers = [("Allow", ALLOW), ("Accept", "application/sdp"), ("Supported", "")]
        elif method == "INVITE":
            if not in_dialog:
                status = 481
            else:
                assert dialog is not None
                if dialog.receive_request(request) is not None:
                    status = 500
                else:
                    headers = [("Contact", self.contact)]
                    if self.local_sdp:
                        headers.append(("Content-Type", "application/sdp"))
                        body = self.local_sdp
        elif method == "CANCEL":
            status = 481
        elif method in ("INFO", "UPDATE", "NOTIFY"):
            status = 200 if in_dialog else 481
        else:
            status = 405
            headers = [("Allow", ALLOW)]
        local_tag = dialog.local_tag if dialog is not None else None
        response = build_response(request, status, headers=headers, body=body, to_tag=local_tag)
        try:
            self.layer.respond(tx, response, self._now())
        except TransactionStateError:
            return

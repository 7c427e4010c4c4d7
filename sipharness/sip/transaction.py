"""Sans-I/O RFC 3261 §17 transactions (with RFC 6026 Accepted states) and the layer owning them.

Public API (time is a float passed in; nothing here reads a clock or touches a socket)::

    layer = TransactionLayer(TimerConfig(), reliable=False, destination=("127.0.0.1", 5060))
    tx = layer.send_request(invite, now)                  # ClientInviteTransaction, bytes queued
    layer.data_to_send() -> list[tuple[bytes, Destination]]  # drain after every call
    layer.receive(message, now, source) -> list[Event]    # responses -> client transactions,
                                                          # requests -> server transactions
    layer.on_timer(now) -> list[Event]                    # call at layer.next_deadline()
    layer.respond(server_tx, response, now) -> list[Event]
    layer.send_stateless(ack_for_2xx, destination)        # no transaction (ACK for a 2xx)
    layer.cancel(invite_tx, now, headers=()) -> ClientNonInviteTransaction
    layer.invite_for_cancel(cancel_request) -> ServerInviteTransaction | None

Transactions: ``ClientInviteTransaction`` (Calling → Proceeding → Completed | Accepted →
Terminated; Timer A uncapped doubling, B, D, M; ACK for a non-2xx built inside with the
INVITE's branch and the response's To-tag, resent on each repeated non-2xx),
``ClientNonInviteTransaction`` (Trying → Proceeding → Completed; E capped at T2, F, K),
``ServerNonInviteTransaction`` (Trying → Proceeding → Completed; J; repeated requests get
the last response), ``ServerInviteTransaction`` (Proceeding → Completed → Confirmed |
Accepted → Terminated; optional automatic 100; G, H, I for a non-2xx; for a 2xx the layer
resends it at T1 doubling to T2 until the ACK (new branch, matched by Call-ID, CSeq number
and From-tag) arrives, and Timer L ends it, reporting ``TransactionTimedOut(timer="L")``
when no ACK came). Over reliable transports nothing is retransmitted and D, I, J, K are 0.

Matching: responses by top Via branch + CSeq method (§17.1.3, so a CANCEL's responses
never reach the INVITE); requests by branch + sent-by + method, with ACK matching its
INVITE (§17.2.3), or by Call-ID, From-tag, CSeq number and top Via for RFC 2543 branches.
Timers live in one heap with lazy deletion: no per-tick scan of every transaction.

Events are those of ``sipharness.sip.events``; a message whose Via, CSeq, From or To does
not parse yields ``MalformedMessage`` and touches no transaction. As in RFC 3261, Timer B
only runs in Calling: an INVITE answered by a provisional never times out here, so the
agent bounds the wait itself (and CANCELs). ``respond`` raises ``TransactionStateError``
for a response the state forbids (a second final). ``ack_for_non_2xx(invite, response)``
is the §17.1.1.3 ACK builder the client INVITE transaction uses.
"""

from __future__ import annotations

import heapq
import itertools
import weakref
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, ClassVar

from sipharness.sip.dialog import create_cancel
from sipharness.sip.events import (
    AckReceived,
    AckSent,
    Event,
    FinalReceived,
    MalformedMessage,
    ProvisionalReceived,
    RequestReceived,
    RequestRetransmitted,
    ResponseRepeated,
    ResponseRetransmitted,
    RetransmissionAbsorbed,
    StrayResponse,
    TimeoutTimer,
    TransactionTerminated,
    TransactionTimedOut,
)
from sipharness.sip.identifiers import MAGIC_COOKIE
from sipharness.sip.message import (
    Request,
    Response,
    SipParseError,
    build_request,
    build_response,
)
from sipharness.sip.timers import TimerConfig

Destination = Any
"""Opaque to this module: whatever the driver needs to send bytes (an address tuple...)."""


class TransactionState(StrEnum):
    """States of RFC 3261 §17 figures 5–8 plus RFC 6026 Accepted."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class TransactionStateError(RuntimeError):
    """A response the transaction's state forbids (e.g. a second final response)."""


class Transaction:
    """State shared by all four transaction kinds; created only by ``TransactionLayer``."""

    initial_state: ClassVar[TransactionState]

    def __init__(
        self,
        layer: TransactionLayer,
        request: Request,
        now: float,
        reliable: bool,
        destination: Destination,
    ) -> None:
        self.request = request
        self.method = request.method
        top = request.vias[0] if request.vias else None
        self.branch: str | None = top.branch if top is not None else None
        self.created_at = now
        self.reliable = reliable
        self.destination = destination
        self.state = self.initial_state
        self.terminated_at: float | None = None
        self.retransmissions = 0
        self.last_response: Response | None = None
        # A weak reference: the layer holds its transactions, and a cycle would keep a
        # finished call's layer for the cyclic garbage collector (slow under load).
        self._layer: TransactionLayer = weakref.proxy(layer)
        self._timers: dict[str, int] = {}
        self._key: tuple[Any, ...] = ()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} branch={self.branch} {self.state}>"

    @property
    def config(self) -> TimerConfig:
        return self._layer.config

    def _send(self, data: Request | Response) -> None:
        self._layer._queue(data.to_bytes(), self.destination)

    def _set_timer(self, name: str, deadline: float) -> None:
        self._timers[name] = self._layer._schedule(self, name, deadline)

    def _cancel_timers(self, *names: str) -> None:
        for name in names:
            self._timers.pop(name, None)

    def _linger(self, name: str, delay: float, now: float, events: list[Event]) -> None:
        """Wait ``delay`` on timer ``name`` before Terminated; a zero delay ends now."""
        if delay > 0:
            self._set_timer(name, now + delay)
        else:
            self._terminate(now, events)

    def _terminate(self, now: float, events: list[Event]) -> None:
        self.state = TransactionState.TERMINATED
        self.terminated_at = now
        self._timers.clear()
        self._layer._forget(self)
        events.append(TransactionTerminated(now, self))

    def _timed_out(self, timer: TimeoutTimer, now: float) -> list[Event]:
        events: list[Event] = [TransactionTimedOut(now, self, timer)]
        self._terminate(now, events)
        return events

    def _fire(self, name: str, now: float) -> list[Event]:
        raise NotImplementedError


class ClientTransaction(Transaction):
    """A request we sent; ``final_response`` is the first final response received."""

    def __init__(
        self,
        layer: TransactionLayer,
        request: Request,
        now: float,
        reliable: bool,
        destination: Destination,
    ) -> None:
        super().__init__(layer, request, now, reliable, destination)
        self.final_response: Response | None = None

    def _start(self, now: float) -> None:
        raise NotImplementedError

    def _on_response(self, response: Response, now: float) -> list[Event]:
        raise NotImplementedError


class ClientInviteTransaction(ClientTransaction):
    """RFC 3261 §17.1.1 with RFC 6026 §7.2 Accepted; ``ack`` is the ACK for a non-2xx."""

    initial_state = TransactionState.CALLING

    def __init__(
        self,
        layer: TransactionLayer,
        request: Request,
        now: float,
        reliable: bool,
        destination: Destination,
    ) -> None:
        super().__init__(layer, request, now, reliable, destination)
        self.ack: Request | None = None
        self.accepted_to_tags: list[str | None] = []

    def _start(self, now: float) -> None:
        self._send(self.request)
        if not self.reliable:
            self._set_timer("A", now + self.config.a)
        self._set_timer("B", now + self.config.b)

    def _fire(self, name: str, now: float) -> list[Event]:
        events: list[Event] = []
        if name == "A" and self.state is TransactionState.CALLING:
            self.retransmissions += 1
            self._send(self.request)
            events.append(RequestRetransmitted(now, self, self.retransmissions))
            self._set_timer("A", now + self.config.invite_interval(self.retransmissions))
        elif name == "B" and self.state is TransactionState.CALLING:
            return self._timed_out("B", now)
        elif name in ("D", "M"):
            self._terminate(now, events)
        return events

    def _on_response(self, response: Response, now: float) -> list[Event]:
        events: list[Event] = []
        status = response.status
        if self.state in (TransactionState.CALLING, TransactionState.PROCEEDING):
            self.last_response = response
            if status < 200:
                self.state = TransactionState.PROCEEDING
                self._cancel_timers("A", "B")
                events.append(ProvisionalReceived(now, self, response))
                return events
            self._cancel_timers("A", "B")
            self.final_response = response
            events.append(FinalReceived(now, self, response))
            if status < 300:
                self.state = TransactionState.ACCEPTED
                self.accepted_to_tags.append(_to_tag(response))
                self._set_timer("M", now + self.config.m)
            else:
                self.state = TransactionState.COMPLETED
                self.ack = ack_for_non_2xx(self.request, response)
                self._send(self.ack)
                events.append(AckSent(now, self, self.ack))
                self._linger("D", self.config.d(self.reliable), now, events)
        elif self.state is TransactionState.ACCEPTED and 200 <= status < 300:
            self.last_response = response
            tag = _to_tag(response)
            if tag in self.accepted_to_tags:
                events.append(ResponseRepeated(now, self, response))
            else:
                self.accepted_to_tags.append(tag)
                events.append(FinalReceived(now, self, response))
        elif self.state is TransactionState.COMPLETED and status >= 300:
            self.last_response = response
            events.append(ResponseRepeated(now, self, response))
            if self.ack is not None:
                self._send(self.ack)
                events.append(AckSent(now, self, self.ack))
        else:
            events.append(StrayResponse(now, response, f"{status} in state {self.state}"))
        return events


class ClientNonInviteTransaction(ClientTransaction):
    """RFC 3261 §17.1.2: Timer E doubling to T2 (T2 once Proceeding), F, K."""

    initial_state = TransactionState.TRYING

    def _start(self, now: float) -> None:
        self._send(self.request)
        if not self.reliable:
            self._set_timer("E", now + self.config.e)
        self._set_timer("F", now + self.config.f)

    def _fire(self, name: str, now: float) -> list[Event]:
        events: list[Event] = []
        waiting = self.state in (TransactionState.TRYING, TransactionState.PROCEEDING)
        if name == "E" and waiting:
            self.retransmissions += 1
            self._send(self.request)
            events.append(RequestRetransmitted(now, self, self.retransmissions))
            if self.state is TransactionState.TRYING:
                interval = self.config.non_invite_interval(self.retransmissions)
            else:
                interval = self.config.t2
            self._set_timer("E", now + interval)
        elif name == "F" and waiting:
            return self._timed_out("F", now)
        elif name == "K":
            self._terminate(now, events)
        return events

    def _on_response(self, response: Response, now: float) -> list[Event]:
        events: list[Event] = []
        status = response.status
        if self.state in (TransactionState.TRYING, TransactionState.PROCEEDING):
            self.last_response = response
            if status < 200:
                self.state = TransactionState.PROCEEDING
                events.append(ProvisionalReceived(now, self, response))
            else:
                self.state = TransactionState.COMPLETED
                self.final_response = response
                self._cancel_timers("E", "F")
                events.append(FinalReceived(now, self, response))
                self._linger("K", self.config.k(self.reliable), now, events)
        elif self.state is TransactionState.COMPLETED and status >= 200:
            events.append(ResponseRepeated(now, self, response))
        else:
            events.append(StrayResponse(now, response, f"{status} in state {self.state}"))
        return events


class ServerTransaction(Transaction):
    """A request the far end sent us; answer through ``TransactionLayer.respond``."""

    def _respond(self, response: Response, now: float) -> list[Event]:
        raise NotImplementedError

    def _on_retransmission(self, request: Request, now: float) -> list[Event]:
        repeated = self.last_response if self.state is not TransactionState.ACCEPTED else None
        if repeated is not None:
            self._send(repeated)
        return [RetransmissionAbsorbed(now, self, request, repeated)]

    def _refuse(self, response: Response) -> TransactionStateError:
        return TransactionStateError(
            f"cannot send {response.status} on {self.method} in state {self.state}"
        )


class ServerNonInviteTransaction(ServerTransaction):
    """RFC 3261 §17.2.2: Trying → Proceeding → Completed (Timer J) → Terminated."""

    initial_state = TransactionState.TRYING

    def _respond(self, response: Response, now: float) -> list[Event]:
        events: list[Event] = []
        if self.state not in (TransactionState.TRYING, TransactionState.PROCEEDING):
            raise self._refuse(response)
        self.last_response = response
        self._send(response)
        if response.status < 200:
            self.state = TransactionState.PROCEEDING
        else:
            self.state = TransactionState.COMPLETED
            self._linger("J", self.config.j(self.reliable), now, events)
        return events

    def _fire(self, name: str, now: float) -> list[Event]:
        events: list[Event] = []
        if name == "J":
            self._terminate(now, events)
        return events


class ServerInviteTransaction(ServerTransaction):
    """RFC 3261 §17.2.1 with RFC 6026 §7.1 Accepted; ``acked`` once the ACK arrived."""

    initial_state = TransactionState.PROCEEDING

    def __init__(
        self,
        layer: TransactionLayer,
        request: Request,
        now: float,
        reliable: bool,
        destination: Destination,
    ) -> None:
        super().__init__(layer, request, now, reliable, destination)
        self.acked = False

    def _respond(self, response: Response, now: float) -> list[Event]:
        events: list[Event] = []
        status = response.status
        if self.state is TransactionState.ACCEPTED and 200 <= status < 300:
            self.last_response = response
            self._send(response)
            return events
        if self.state is not TransactionState.PROCEEDING:
            raise self._refuse(response)
        self.last_response = response
        self._send(response)
        if 200 <= status < 300:
            self.state = TransactionState.ACCEPTED
            self._layer._accept(self)
            if not self.reliable:
                self._set_timer("2xx", now + self.config.t1)
            self._set_timer("L", now + self.config.l)
        elif status >= 300:
            self.state = TransactionState.COMPLETED
            if not self.reliable:
                self._set_timer("G", now + self.config.g)
            self._set_timer("H", now + self.config.h)
        return events

    def _on_ack(self, ack: Request, now: float) -> list[Event]:
        events: list[Event] = [AckReceived(now, self, ack)]
        if self.state is TransactionState.COMPLETED:
            self.acked = True
            self.state = TransactionState.CONFIRMED
            self._cancel_timers("G", "H")
            self._linger("I", self.config.i(self.reliable), now, events)
        elif self.state is TransactionState.ACCEPTED:
            self.acked = True
            self._cancel_timers("2xx")
        return events

    def _fire(self, name: str, now: float) -> list[Event]:
        events: list[Event] = []
        resend = (name == "G" and self.state is TransactionState.COMPLETED) or (
            name == "2xx" and self.state is TransactionState.ACCEPTED
        )
        if resend and self.last_response is not None:
            self.retransmissions += 1
            self._send(self.last_response)
            events.append(
                ResponseRetransmitted(now, self, self.last_response, self.retransmissions)
            )
            self._set_timer(name, now + self.config.non_invite_interval(self.retransmissions))
        elif name == "H" and self.state is TransactionState.COMPLETED:
            return self._timed_out("H", now)
        elif name == "L" and not self.acked:
            return self._timed_out("L", now)
        elif name in ("I", "L"):
            self._terminate(now, events)
        return events


class TransactionLayer:
    """The transactions of one endpoint (one socket or one call), driven by the caller.

    ``reliable`` is the default transport kind and ``destination`` the default place
    client requests go; server transactions answer to the ``source`` given to ``receive``.
    ``send_trying`` makes every new server INVITE transaction send 100 Trying at once.
    """

    def __init__(
        self,
        config: TimerConfig | None = None,
        *,
        reliable: bool = False,
        destination: Destination = None,
        send_trying: bool = True,
    ) -> None:
        self.config = config or TimerConfig()
        self.reliable = reliable
        self.destination = destination
        self.send_trying = send_trying
        self._clients: dict[tuple[Any, ...], ClientTransaction] = {}
        self._servers: dict[tuple[Any, ...], ServerTransaction] = {}
        self._accepted: dict[tuple[Any, ...], ServerInviteTransaction] = {}
        self._heap: list[tuple[float, int, Transaction, str]] = []
        self._sequence = itertools.count()
        self._outbox: list[tuple[bytes, Destination]] = []

    def __len__(self) -> int:
        """Number of live (not yet Terminated) transactions."""
        return len(self._clients) + len(self._servers)

    def send_request(
        self,
        request: Request,
        now: float,
        *,
        reliable: bool | None = None,
        destination: Destination = None,
    ) -> ClientTransaction:
        """Start a client transaction for ``request`` (not ACK) and queue its bytes."""
        if request.method == "ACK":
            raise ValueError("ACK is not sent in a transaction: use send_stateless")
        kind = ClientInviteTransaction if request.method == "INVITE" else ClientNonInviteTransaction
        tx = kind(
            self,
            request,
            now,
            self.reliable if reliable is None else reliable,
            self.destination if destination is None else destination,
        )
        if tx.branch is None or request.cseq is None:
            raise ValueError("a request needs a top Via with a branch and a CSeq")
        key = (tx.branch, request.cseq[1].upper())
        if key in self._clients:
            raise ValueError(f"a client transaction with branch {tx.branch} is already live")
        tx._key = key
        self._clients[key] = tx
        tx._start(now)
        return tx

    def cancel(
        self,
        invite: ClientTransaction,
        now: float,
        headers: Sequence[tuple[str, str] | bytes] = (),
    ) -> ClientNonInviteTransaction:
        """Send a CANCEL for a client INVITE transaction (§9.1), same destination and
        transport; ``headers`` may add a Reason. Call it once a provisional arrived.
        """
        if not isinstance(invite, ClientInviteTransaction):
            raise ValueError(f"only an INVITE can be cancelled, not {invite.method}")
        tx = self.send_request(
            create_cancel(invite.request, headers),
            now,
            reliable=invite.reliable,
            destination=invite.destination,
        )
        assert isinstance(tx, ClientNonInviteTransaction)
        return tx

    def send_stateless(self, message: Request | Response, destination: Destination = None) -> None:
        """Queue a message outside any transaction, e.g. the ACK for a 2xx."""
        self._queue(message.to_bytes(), self.destination if destination is None else destination)

    def respond(
        self, transaction: ServerTransaction, response: Response, now: float
    ) -> list[Event]:
        """Send ``response`` on a server transaction; raises TransactionStateError if late."""
        return transaction._respond(response, now)

    def receive(
        self,
        message: Request | Response,
        now: float,
        source: Destination = None,
        *,
        reliable: bool | None = None,
    ) -> list[Event]:
        """Match one received message to its transaction and report what it caused."""
        problem = _matching_fields_problem(message)
        if problem is not None:
            return [MalformedMessage(now, message, problem)]
        if isinstance(message, Response):
            return self._receive_response(message, now)
        return self._receive_request(
            message, now, source, self.reliable if reliable is None else reliable
        )

    def on_timer(self, now: float) -> list[Event]:
        """Fire every timer due at ``now`` (call it at or after ``next_deadline()``)."""
        events: list[Event] = []
        while self._heap and self._heap[0][0] <= now:
            _, sequence, tx, name = heapq.heappop(self._heap)
            if tx._timers.get(name) != sequence:
                continue
            del tx._timers[name]
            events.extend(tx._fire(name, now))
        return events

    def next_deadline(self) -> float | None:
        """When ``on_timer`` next has work, or None when no timer is running."""
        while self._heap:
            _, sequence, tx, name = self._heap[0]
            if tx._timers.get(name) == sequence:
                return self._heap[0][0]
            heapq.heappop(self._heap)
        return None

    def data_to_send(self) -> list[tuple[bytes, Destination]]:
        """Drain the queued datagrams/segments with their destinations, oldest first."""
        out, self._outbox = self._outbox, []
        return out

    def invite_for_cancel(self, cancel: Request) -> ServerInviteTransaction | None:
        """The server INVITE transaction a received CANCEL targets (§9.2), if still live."""
        tx = self._servers.get(_server_key(cancel, "INVITE"))
        return tx if isinstance(tx, ServerInviteTransaction) else None

    def _receive_response(self, response: Response, now: float) -> list[Event]:
        top = response.vias[0] if response.vias else None
        cseq = response.cseq
        tx = None
        if top is not None and top.branch is not None and cseq is not None:
            tx = self._clients.get((top.branch, cseq[1].upper()))
        if tx is None:
            return [StrayResponse(now, response, "no matching client transaction")]
        return tx._on_response(response, now)

    def _receive_request(
        self, request: Request, now: float, source: Destination, reliable: bool
    ) -> list[Event]:
        if request.method == "ACK":
            invite = self._servers.get(_server_key(request, "INVITE"))
            if invite is None:
                invite = self._accepted.get(_dialog_key(request))
            if isinstance(invite, ServerInviteTransaction):
                return invite._on_ack(request, now)
            return [AckReceived(now, None, request)]
        key = _server_key(request, request.method)
        existing = self._servers.get(key)
        if existing is not None:
            return existing._on_retransmission(request, now)
        kind = ServerInviteTransaction if request.method == "INVITE" else ServerNonInviteTransaction
        tx = kind(self, request, now, reliable, self.destination if source is None else source)
        tx._key = key
        self._servers[key] = tx
        events: list[Event] = [RequestReceived(now, tx, request)]
        if isinstance(tx, ServerInviteTransaction) and self.send_trying:
            tx._respond(build_response(request, 100), now)
        return events

    def _queue(self, data: bytes, destination: Destination) -> None:
        self._outbox.append((data, destination))

    def _schedule(self, tx: Transaction, name: str, deadline: float) -> int:
        sequence = next(self._sequence)
        heapq.heappush(self._heap, (deadline, sequence, tx, name))
        return sequence

    def _accept(self, tx: ServerInviteTransaction) -> None:
        self._accepted[_dialog_key(tx.request)] = tx

    def _forget(self, tx: Transaction) -> None:
        if isinstance(tx, ClientTransaction):
            self._clients.pop(tx._key, None)
            return
        if self._servers.get(tx._key) is tx:
            del self._servers[tx._key]
        if isinstance(tx, ServerInviteTransaction):
            dialog_key = _dialog_key(tx.request)
            if self._accepted.get(dialog_key) is tx:
                del self._accepted[dialog_key]


def ack_for_non_2xx(invite: Request, response: Response) -> Request:
    """The ACK for a non-2xx final (§17.1.1.3): INVITE's branch and Route, response's To."""
    vias = invite.header_values("via")
    headers: list[tuple[str, str]] = [("Via", vias[0])] if vias else []
    headers += [("Route", route) for route in invite.header_values("route")]
    headers += [
        ("Max-Forwards", "70"),
        ("From", invite.header("from") or ""),
        ("To", response.header("to") or ""),
        ("Call-ID", invite.header("call-id") or ""),
        ("CSeq", f"{invite.cseq[0] if invite.cseq else 0} ACK"),
    ]
    return build_request("ACK", invite.uri, headers)


def _matching_fields_problem(message: Request | Response) -> str | None:
    """Why Via, CSeq, From or To cannot be parsed, or None when matching can use them."""
    try:
        _ = (message.vias, message.cseq, message.from_, message.to)
    except SipParseError as exc:
        return str(exc)
    return None


def _to_tag(response: Response) -> str | None:
    return response.to.tag if response.to is not None else None


def _server_key(request: Request, method: str) -> tuple[Any, ...]:
    """§17.2.3 matching key; ``method`` is the request's, or INVITE for ACK and CANCEL."""
    top = request.vias[0] if request.vias else None
    branch = top.branch if top is not None else None
    if top is not None and branch is not None and branch.startswith(MAGIC_COOKIE):
        return (branch, top.host.lower(), top.port, method)
    cseq_number = request.cseq[0] if request.cseq else None
    from_tag = request.from_.tag if request.from_ is not None else None
    vias = request.header_values("via")
    return ("rfc2543", request.call_id, from_tag, cseq_number, vias[0] if vias else None, method)


def _dialog_key(request: Request) -> tuple[Any, ...]:
    """What an ACK for a 2xx shares with its INVITE: Call-ID, CSeq number, From-tag."""
    from_tag = request.from_.tag if request.from_ is not None else None
    return (request.call_id, request.cseq[0] if request.cseq else None, from_tag)

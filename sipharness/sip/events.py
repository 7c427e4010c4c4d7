"""Events the sans-I/O transaction layer reports: frozen dataclasses, each with ``time``.

Client side (requests we sent):
  ``RequestRetransmitted`` (Timer A/E resend), ``ProvisionalReceived``, ``FinalReceived``
  (first final, or a 2xx with a new To-tag while Accepted), ``ResponseRepeated`` (a final
  received again: a non-2xx on the far end's Timer G, a 2xx retransmission the agent must
  re-ACK), ``AckSent`` (ACK for a non-2xx built by the transaction), ``StrayResponse``
  (matches no transaction, e.g. a 2xx after Timer M: the agent must re-ACK it).
Server side (requests the far end sent):
  ``RequestReceived`` (new server transaction), ``RetransmissionAbsorbed`` (request resent
  by the far end; the last response was repeated if there was one), ``AckReceived`` (ACK
  for our non-2xx or 2xx, or an ACK matching nothing), ``ResponseRetransmitted`` (our final
  resent on Timer G or the 2xx resend timer).
Both: ``MalformedMessage`` (Via, CSeq, From or To too broken to match; nothing changed),
  ``TransactionTimedOut`` (timer "B", "F", "H", or "L": our 2xx never ACKed within
  64·T1, RFC 3261 §13.3.1.4) and ``TransactionTerminated``.

``ProvisionalReceived``, ``FinalReceived`` and ``ResponseRepeated`` subclass
``ResponseReceived``. Call phases are ``event.time - event.transaction.created_at``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from sipharness.sip.message import Request, Response
    from sipharness.sip.transaction import (
        ClientInviteTransaction,
        ClientTransaction,
        ServerInviteTransaction,
        ServerTransaction,
        Transaction,
    )

TimeoutTimer = Literal["B", "F", "H", "L"]


@dataclass(frozen=True)
class Event:
    """Base of every transaction-layer event."""

    time: float


@dataclass(frozen=True)
class RequestRetransmitted(Event):
    """A request we sent was resent on Timer A or E; ``attempt`` counts from 1."""

    transaction: ClientTransaction
    attempt: int


@dataclass(frozen=True)
class ResponseReceived(Event):
    """A response matched one of our client transactions."""

    transaction: ClientTransaction
    response: Response


@dataclass(frozen=True)
class ProvisionalReceived(ResponseReceived):
    """A 1xx (every one, including repeats) for our request."""


@dataclass(frozen=True)
class FinalReceived(ResponseReceived):
    """The first final response, or a 2xx to INVITE from another fork (new To-tag)."""


@dataclass(frozen=True)
class ResponseRepeated(ResponseReceived):
    """A final response received again: a retransmitted non-2xx, or a 2xx to re-ACK."""


@dataclass(frozen=True)
class AckSent(Event):
    """The client INVITE transaction sent (or resent) the ACK for a non-2xx final."""

    transaction: ClientInviteTransaction
    ack: Request


@dataclass(frozen=True)
class StrayResponse(Event):
    """A response no transaction takes; ``reason`` says why (a 2xx here needs a re-ACK)."""

    response: Response
    reason: str


@dataclass(frozen=True)
class RequestReceived(Event):
    """A new request from the far end; answer it with ``TransactionLayer.respond``."""

    transaction: ServerTransaction
    request: Request


@dataclass(frozen=True)
class RetransmissionAbsorbed(Event):
    """The far end resent a request; ``response`` is what we repeated (None: nothing yet)."""

    transaction: ServerTransaction
    request: Request
    response: Response | None


@dataclass(frozen=True)
class AckReceived(Event):
    """An ACK: for our non-2xx or 2xx (``transaction`` set), or matching nothing (None)."""

    transaction: ServerInviteTransaction | None
    request: Request


@dataclass(frozen=True)
class ResponseRetransmitted(Event):
    """Our final response to an INVITE was resent (Timer G, or the 2xx resend timer)."""

    transaction: ServerInviteTransaction
    response: Response
    attempt: int


@dataclass(frozen=True)
class MalformedMessage(Event):
    """A message whose Via, CSeq, From or To cannot be parsed; no transaction saw it."""

    message: Request | Response
    reason: str


@dataclass(frozen=True)
class TransactionTimedOut(Event):
    """No answer in time: B/F (client), H (no ACK for non-2xx), L (no ACK for 2xx)."""

    transaction: Transaction
    timer: TimeoutTimer


@dataclass(frozen=True)
class TransactionTerminated(Event):
    """The transaction reached Terminated and left the layer."""

    transaction: Transaction

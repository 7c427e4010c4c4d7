"""RFC 3261 §12 dialogs: tags, route set, remote target and CSeq; builds in-dialog requests.

Public API::

    dialog = Dialog.from_uac(invite, response)   # our INVITE + a 1xx/2xx with a To-tag
    dialog = Dialog.from_uas(invite, response, via="SIP/2.0/UDP 127.0.0.1:5080")
                                                 # their INVITE + our 1xx/2xx with a To-tag
    dialog.update(response)                      # a later 1xx/2xx to the INVITE: confirm,
                                                 # recompute routes (2xx), refresh target
    dialog.create_request("BYE", headers=(), body=b"") -> Request   # next local CSeq
    dialog.create_ack(invite, response_2xx, body=b"") -> Request    # ACK for a 2xx, §13.2.2.4
    dialog.receive_request(request) -> int | None  # None: accept; 500: CSeq out of order
    dialog.matches_request(request) / dialog.matches_response(response) -> bool
    create_cancel(invite, headers=()) -> Request  # §9.1; no dialog needed

Branches default to ``message.new_branch()``; pass ``branch=`` for reproducible bytes.

In-dialog requests follow §12.2.1.1: with no route set or a loose first route (``;lr``)
the Request-URI is the remote target and Route is the route set; with a strict first
route the Request-URI is that route and the remote target closes the Route list.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from sipharness.sip.message import NameAddr, Request, Response, build_request, new_branch

HeaderItem = tuple[str, str] | bytes
TARGET_REFRESH = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})


class DialogState(StrEnum):
    """§12: a dialog is early until a 2xx confirms it; BYE terminates it."""

    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class Dialog:
    """One dialog's state, seen from our side (UAC or UAS).

    ``local_address``/``remote_address`` are the From/To header values we send (with
    tags); ``local_uri``/``remote_uri`` their URIs; ``remote_target`` the far end's Contact
    URI; ``route_set`` the Route values in sending order; ``local_cseq`` the CSeq number of
    our last request (``create_request`` uses the next); ``remote_cseq`` the highest CSeq
    number seen from the far end (None until one arrives).
    """

    def __init__(
        self,
        *,
        call_id: str,
        local_tag: str,
        remote_tag: str,
        local_address: str,
        remote_address: str,
        remote_target: str,
        route_set: Sequence[str],
        local_cseq: int,
        remote_cseq: int | None,
        local_contact: str | None,
        via: str,
        secure: bool,
        state: DialogState,
    ) -> None:
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_address = local_address
        self.remote_address = remote_address
        self.local_uri = _address_uri(local_address)
        self.remote_uri = _address_uri(remote_address)
        self.remote_target = remote_target
        self.route_set = list(route_set)
        self.local_cseq = local_cseq
        self.remote_cseq = remote_cseq
        self.local_contact = local_contact
        self.via = via
        self.secure = secure
        self.state = state

    def __repr__(self) -> str:
        return f"<Dialog {self.call_id} {self.local_tag}/{self.remote_tag} {self.state}>"

    @property
    def id(self) -> tuple[str, str, str]:
        """The dialog ID (§12): Call-ID, local tag, remote tag."""
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def from_uac(cls, invite: Request, response: Response) -> Dialog:
        """The dialog our INVITE and a 1xx (early) or 2xx (confirmed) with a To-tag make."""
        local_tag = invite.from_.tag if invite.from_ is not None else None
        remote_tag = response.to.tag if response.to is not None else None
        if not local_tag or not remote_tag or not invite.call_id or not invite.cseq:
            raise ValueError("a dialog needs Call-ID, CSeq, a From-tag and a To-tag")
        if not 100 < response.status < 300:
            raise ValueError(f"a {response.status} response does not create a dialog")
        contact = response.contact
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_address=invite.header("from") or "",
            remote_address=response.header("to") or "",
            remote_target=contact[0].uri if contact else invite.uri,
            route_set=list(reversed(response.header_values("record-route"))),
            local_cseq=invite.cseq[0],
            remote_cseq=None,
            local_contact=invite.header("contact"),
            via=_via_without_branch(invite),
            secure=invite.uri.lower().startswith("sips:"),
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
        )

    @classmethod
    def from_uas(cls, invite: Request, response: Response, *, via: str) -> Dialog:
        """The dialog their INVITE and our 1xx/2xx with a To-tag make.

        ``via`` is our Via without branch (``"SIP/2.0/UDP 127.0.0.1:5080;rport"``) for the
        requests we send in the dialog.
        """
        remote_tag = invite.from_.tag if invite.from_ is not None else None
        local_tag = response.to.tag if response.to is not None else None
        if not local_tag or not remote_tag or not invite.call_id or not invite.cseq:
            raise ValueError("a dialog needs Call-ID, CSeq, a From-tag and a To-tag")
        contact = invite.contact
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_address=response.header("to") or "",
            remote_address=invite.header("from") or "",
            remote_target=contact[0].uri if contact else "",
            route_set=invite.header_values("record-route"),
            local_cseq=0,
            remote_cseq=invite.cseq[0],
            local_contact=response.header("contact"),
            via=via,
            secure=invite.uri.lower().startswith("sips:"),
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
        )

    def matches_request(self, request: Request) -> bool:
        """True when a request from the far end belongs to this dialog (§12.2.2)."""
        to_tag = request.to.tag if request.to is not None else None
        from_tag = request.from_.tag if request.from_ is not None else None
        return (request.call_id, to_tag, from_tag) == self.id

    def matches_response(self, response: Response) -> bool:
        """True when a response to our request belongs to this dialog."""
        to_tag = response.to.tag if response.to is not None else None
        from_tag = response.from_.tag if response.from_ is not None else None
        return (response.call_id, from_tag, to_tag) == self.id

    def update(self, response: Response) -> None:
        """Apply a later 1xx/2xx to the INVITE or a target refresh (§12.1.2, §12.2.1.2).

        A 2xx confirms an early dialog and recomputes its route set (§13.2.2.4); any
        response with a Contact refreshes the remote target.
        """
        if not self.matches_response(response):
            raise ValueError("the response belongs to another dialog")
        method = response.cseq[1].upper() if response.cseq else ""
        if not 100 < response.status < 300 or method not in TARGET_REFRESH:
            return
        if response.status >= 200 and method == "INVITE" and self.state is DialogState.EARLY:
            self.state = DialogState.CONFIRMED
            self.route_set = list(reversed(response.header_values("record-route")))
        contact = response.contact
        if contact:
            self.remote_target = contact[0].uri

    def receive_request(self, request: Request) -> int | None:
        """Check an in-dialog request from the far end (§12.2.2).

        Returns None when it may be processed (the remote CSeq, target and state are
        updated) or 500 when its CSeq is lower than the last one (DLG-06).
        """
        cseq = request.cseq[0] if request.cseq else None
        if request.method not in ("ACK", "CANCEL") and cseq is not None:
            if self.remote_cseq is not None and cseq < self.remote_cseq:
                return 500
            self.remote_cseq = cseq
        contact = request.contact
        if request.method in TARGET_REFRESH and contact:
            self.remote_target = contact[0].uri
        if request.method == "BYE":
            self.state = DialogState.TERMINATED
        return None

    def create_request(
        self,
        method: str,
        headers: Sequence[HeaderItem] = (),
        body: bytes = b"",
        *,
        branch: str | None = None,
        via: str | None = None,
    ) -> Request:
        """A request in this dialog (BYE, re-INVITE, INFO, OPTIONS...) with the next CSeq.

        ``headers`` are added after the dialog's own (Via, Route, Max-Forwards, From, To,
        Call-ID, CSeq and, for target refreshes, Contact); give Content-Type with a body.
        ``via`` replaces the dialog's Via (with ``branch`` or a new one) as a whole.
        """
        method = method.upper()
        if method in ("ACK", "CANCEL"):
            raise ValueError(f"{method} is built by create_ack / create_cancel")
        self.local_cseq += 1
        extra: list[HeaderItem] = []
        if method in TARGET_REFRESH and self.local_contact:
            extra.append(("Contact", self.local_contact))
        extra.extend(headers)
        return self._build(method, self.local_cseq, extra, body, branch, via)

    def create_ack(
        self,
        invite: Request,
        response_2xx: Response,
        body: bytes = b"",
        *,
        headers: Sequence[HeaderItem] = (),
        branch: str | None = None,
        via: str | None = None,
    ) -> Request:
        """The ACK for a 2xx to ``invite`` (§13.2.2.4): new branch, the INVITE's CSeq
        number and credentials, sent to the remote target along the route set. ``via``
        replaces the dialog's Via as a whole.
        """
        if not 200 <= response_2xx.status < 300 or invite.cseq is None:
            raise ValueError("create_ack is for the 2xx to an INVITE")
        self.update(response_2xx)
        extra: list[HeaderItem] = [
            (name, value)
            for name in ("Authorization", "Proxy-Authorization")
            for value in invite.header_values(name)
        ]
        extra.extend(headers)
        return self._build("ACK", invite.cseq[0], extra, body, branch, via)

    def _build(
        self,
        method: str,
        cseq: int,
        extra: Sequence[HeaderItem],
        body: bytes,
        branch: str | None,
        via: str | None = None,
    ) -> Request:
        uri, routes = self._request_uri_and_routes()
        fields: list[HeaderItem] = [("Via", via or f"{self.via};branch={branch or new_branch()}")]
        fields += [("Route", route) for route in routes]
        fields += [
            ("Max-Forwards", "70"),
            ("From", self.local_address),
            ("To", self.remote_address),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        fields += extra
        return build_request(method, uri, fields, body)

    def _request_uri_and_routes(self) -> tuple[str, list[str]]:
        if not self.route_set:
            return self.remote_target, []
        first = _address_uri(self.route_set[0])
        if _is_loose(first):
            return self.remote_target, list(self.route_set)
        return first.split("?", 1)[0], [*self.route_set[1:], f"<{self.remote_target}>"]


def create_cancel(invite: Request, headers: Sequence[HeaderItem] = ()) -> Request:
    """The CANCEL for ``invite`` (§9.1): same Request-URI, top Via, From, To, Call-ID,
    Route and CSeq number; ``headers`` may add e.g. a Reason (RFC 3326).
    """
    if invite.cseq is None:
        raise ValueError("the INVITE has no CSeq")
    vias = invite.header_values("via")
    fields: list[HeaderItem] = [("Via", vias[0])] if vias else []
    fields += [("Route", route) for route in invite.header_values("route")]
    fields += [
        ("Max-Forwards", "70"),
        ("From", invite.header("from") or ""),
        ("To", invite.header("to") or ""),
        ("Call-ID", invite.header("call-id") or ""),
        ("CSeq", f"{invite.cseq[0]} CANCEL"),
    ]
    fields.extend(headers)
    return build_request("CANCEL", invite.uri, fields)


def _address_uri(address: str) -> str:
    """The URI of a name-addr (``"Bob" <sip:b@x>;tag=1`` → ``sip:b@x``) or addr-spec."""
    return NameAddr.parse(address).uri


def _is_loose(uri: str) -> bool:
    params = uri.split("?", 1)[0].split(";")[1:]
    return any(p.strip().lower().split("=", 1)[0] == "lr" for p in params)


def _via_without_branch(request: Request) -> str:
    vias = request.header_values("via")
    if not vias:
        raise ValueError("the request has no Via")
    parts = [part.strip() for part in vias[0].split(";")]
    kept = [parts[0]]
    for part in parts[1:]:
        name = part.split("=", 1)[0].strip().lower()
        if name not in ("branch", "received"):
            kept.append("rport" if name == "rport" else part)
    return ";".join(kept)

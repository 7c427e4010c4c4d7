"""The behaviour ids of CHECKLIST.md (kept by hand in step with it): area and one-line title."""

from __future__ import annotations

from dataclasses import dataclass

AREAS: dict[str, str] = {
    "TXN": "Transactions and reliability",
    "DLG": "Dialogs and sessions",
    "AUTH": "Digest authentication",
    "HDR": "Caller identity and headers",
    "SDP": "Offer/answer and media",
    "EXT": "Extensions",
    "EVT": "Events and webhooks",
    "ROB": "Robustness",
    "LOAD": "Behaviour under load",
}


@dataclass(frozen=True)
class CheckItem:
    """One CHECKLIST.md behaviour; ``area`` is the Allure epic."""

    id: str
    title: str

    @property
    def area(self) -> str:
        return AREAS[self.id.split("-", 1)[0]]


_TITLES: dict[str, str] = {
    "TXN-01": "100 Trying (no To-tag) within 200 ms of an INVITE",
    "TXN-02": "A retransmitted INVITE is absorbed: no second call, join or webhook",
    "TXN-03": "Non-2xx finals over UDP are retransmitted on Timer G until ACK or Timer H",
    "TXN-04": "The ACK for a non-2xx gets no response and stops the retransmissions",
    "TXN-05": "The 2xx is retransmitted until ACK; no ACK for 64·T1 ends the call with BYE",
    "TXN-06": "Retransmitted INVITEs after the 2xx are absorbed, not new calls",
    "TXN-07": "A merged request gets 482 or at least no second session",
    "TXN-08": "Over TCP/TLS nothing is retransmitted and responses reuse the connection",
    "TXN-09": "Responses go to the source port when the Via has rport (RFC 3581)",
    "TXN-10": "An INVITE over 1300 bytes is accepted over UDP (fragmented) and TCP",
    "DLG-01": "Every response except 100 has a stable To-tag; the 2xx has Contact and Record-Route",
    "DLG-02": "CANCEL before the final answer: 200 to the CANCEL, 487 to the INVITE, no join",
    "DLG-03": "CANCEL for no transaction → 481; CANCEL after the final answer → 200",
    "DLG-04": "ACK and CANCEL are never challenged",
    "DLG-05": "BYE in the dialog → 200 and the peer leaves; unknown dialog → 481",
    "DLG-06": "In-dialog request with a lower CSeq → 500",
    "DLG-07": "A second INVITE while one is pending → 500 with Retry-After; glare → 491",
    "DLG-08": "OPTIONS in and out of dialog → 200 with Allow, Accept, Supported",
    "DLG-09": "Unsupported method → 405 with Allow",
    "DLG-10": "Unknown Require → 420 with Unsupported; unsupported Content-Type → 415",
    "DLG-11": "Unknown room code → the documented 4xx; capacity exhausted → 486/480/503",
    "DLG-12": "Missing or garbled mandatory header → 400; the bridge stays up",
    "DLG-13": "No RTP for a configured time → BYE with a Reason header",
    "DLG-14": "Long room joins send 180/183, repeated at least once a minute",
    "AUTH-01": "A UAS challenges with 401 + WWW-Authenticate (or 407 + Proxy-Authenticate)",
    "AUTH-02": "The authenticated retry is accepted and counts as one call",
    "AUTH-03": "Responses verified with and without qop; no algorithm means MD5",
    "AUTH-04": "A digest uri= that does not match the Request-URI is refused",
    "AUTH-05": "opaque is echoed; a replayed nonce with non-increasing nc is refused",
    "AUTH-06": "An expired nonce gets a new challenge with stale=true",
    "AUTH-07": "Wrong password, username, realm or empty password never give 200 or a join",
    "AUTH-08": "SHA-256 and SHA-512-256 work; several challenges; unknown algorithm ignored",
    "AUTH-09": "Credentials with special and non-ASCII characters are quoted and escaped",
    "AUTH-10": "Unauthenticated INVITEs allocate nothing lasting; floods are rate-limited",
    "HDR-01": "X-100ms-Display-Name and X-100ms-UserID name the peer, case-insensitively",
    "HDR-02": "Without a display name the peer is named by the masked caller number",
    "HDR-03": "Percent-encoded header values are decoded exactly once",
    "HDR-04": "UTF-8, empty, very long or duplicated identity headers are handled consistently",
    "HDR-05": "Compact header forms and unusual whitespace or case are accepted",
    "HDR-06": "Odd header tokens and trunk headers never cause a 400",
    "HDR-07": "P-Asserted-Identity may name the caller; Privacy: id hides the number",
    "HDR-08": "Identity headers as Request-URI parameters are handled as documented",
    "SDP-01": "The answer keeps m-lines and order and picks a codec from the offer",
    "SDP-02": "No common codec → 488 with Warning",
    "SDP-03": "Answer directions mirror the offer; hold is not answered sendrecv",
    "SDP-04": "A re-INVITE is answered from the new offer, never stale SDP",
    "SDP-05": "Delayed offer: offer in the 200, answer in the ACK, or a clean 488",
    "SDP-06": "telephone-event negotiated with the offered payload type; DTMF reaches the room",
    "SDP-07": "RTP flows both ways within 1 s of the ACK and stays continuous",
    "SDP-08": "An RTP/SAVP offer gets a crypto answer or 488, never plain RTP/AVP",
    "EXT-01": "Session timers (RFC 4028) are honoured",
    "EXT-02": "Reason headers on CANCEL and BYE are accepted; bridge BYEs carry one",
    "EVT-01": "Exactly one peer.join.success per answered call with the right fields",
    "EVT-02": "Exactly one peer.leave.success after BYE with a plausible duration",
    "EVT-03": "No join for an auth failure, an unknown room code or a cancelled call",
    "EVT-04": "Webhook retries carry the same envelope id and the secret header",
    "EVT-05": "The room roster shows the SIP peer while the call is up and not after",
    "ROB-01": "RFC 4475 torture messages get the right response; the bridge stays up",
    "ROB-02": "Mutated INVITEs never crash or hang the bridge",
    "ROB-03": "Under 10 % packet loss calls still complete",
    "ROB-04": "A bridge restart during load is reported as failed calls",
    "LOAD-01": "Post-dial delay and 401 round trip reported as percentiles",
    "LOAD-02": "Answer-seizure ratio, concurrency and RTP loss/jitter reported",
    "LOAD-03": "Capacity search finds the highest call rate meeting the SLO",
    "LOAD-04": "The harness reports its own saturation beside the results",
}

CHECKS: dict[str, CheckItem] = {cid: CheckItem(cid, title) for cid, title in _TITLES.items()}

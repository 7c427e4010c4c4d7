"""The mock bridge's switchable faults: each breaks one contract rule as real bridges have."""

from __future__ import annotations

import textwrap

FAULTS: dict[str, str] = {
    "no-2xx-retransmit": "Send the 200 OK to INVITE once and never retransmit it, even when no "
    "ACK comes (breaks TXN-05).",
    "401-without-challenge": "Reject unauthenticated INVITEs with 401 but no WWW-Authenticate "
    "header (breaks AUTH-01).",
    "407-instead-of-401": "Challenge with 407 and Proxy-Authenticate although the bridge is a "
    "UAS configured for 401 (breaks AUTH-01).",
    "accept-wrong-credentials": "Accept any Authorization header, even with a wrong password, "
    "username or realm (breaks AUTH-07).",
    "ignore-stale-nonce": "Accept expired nonces instead of re-challenging with stale=true "
    "(breaks AUTH-06).",
    "case-sensitive-headers": "Match X-100ms-Display-Name and X-100ms-UserID only when spelled "
    "exactly so (breaks HDR-01).",
    "no-percent-decode": "Use X-100ms-* header values as received, without percent-decoding "
    "(breaks HDR-03).",
    "no-masking": "Name a caller without a display name by the full, unmasked phone number "
    "(breaks HDR-02).",
    "double-join-on-retransmit": "Send a second peer.join.success webhook when an INVITE is "
    "retransmitted after the answer (breaks TXN-02, EVT-01).",
    "no-leave-webhook": "Never send peer.leave.success (breaks EVT-02).",
    "405-without-allow": "Answer unsupported methods with 405 but no Allow header "
    "(breaks DLG-09).",
    "reinvite-old-sdp": "Answer every re-INVITE with the first SDP answer of the call "
    "(breaks SDP-04).",
    "no-100-trying": "Never send 100 Trying (breaks TXN-01).",
    "to-tag-changes": "Use a different To-tag on the final response than on the provisional "
    "ones (breaks DLG-01).",
    "cancel-ignored": "Answer CANCEL with 200 but carry on and answer the INVITE with 200 "
    "instead of 487 (breaks DLG-02).",
}


def describe_faults() -> str:
    """One line per fault, for ``sipharness bridge --list-faults`` and ``--help``."""
    width = max(len(name) for name in FAULTS)
    indent = " " * (width + 4)
    return "\n".join(textwrap.fill(text, 92, initial_indent=f"  {name:<{width}}  ",
                                   subsequent_indent=indent)
                      for name, text in FAULTS.items())

"""The SDP a call offers (default audio offer, hold/resume direction) and the far end's
media address from its answer — the seam where an RTP session attaches to a call."""

from __future__ import annotations

from dataclasses import dataclass, field

from sipharness.sip.grammar import SipParseError
from sipharness.sip.sdp import DIRECTIONS, STATIC_PAYLOAD_TYPES, SessionDescription, make_offer


@dataclass(frozen=True)
class MediaEndpoint:
    """Where the far end wants RTP: its address, port, and the payload types it answered."""

    address: str
    port: int
    payload_types: tuple[int, ...]
    rtpmap: dict[int, str] = field(default_factory=dict)
    direction: str = "sendrecv"

    @property
    def payload_type(self) -> int | None:
        """The first (chosen) payload type, None when the stream was refused (port 0)."""
        return self.payload_types[0] if self.payload_types and self.port else None


def default_offer(host: str, port: int = 9, *, session_id: int | None = None) -> bytes:
    """An audio offer (PCMU, PCMA, telephone-event, ptime 20) from ``host``:``port``.

    Port 9 (discard) announces "no RTP socket here" until a media session attaches.
    """
    return make_offer(host, port, session_id=session_id).to_bytes()


def with_direction(sdp: bytes, direction: str) -> bytes:
    """``sdp`` with every media section's direction set to ``direction`` and the o= version
    one higher (RFC 3264 §8: a changed offer carries a higher version)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}")
    parsed = SessionDescription.parse(sdp)
    parsed.lines = [_bump_version(kind, value) for kind, value in parsed.lines
                    if not (kind == "a" and value in DIRECTIONS)]  # fmt: skip
    for media in parsed.media:
        media.lines = [(k, v) for k, v in media.lines if not (k == "a" and v in DIRECTIONS)]
        media.lines.append(("a", direction))
    return parsed.to_bytes()


def _bump_version(kind: str, value: str) -> tuple[str, str]:
    parts = value.split()
    if kind == "o" and len(parts) >= 3 and parts[2].isdigit():
        parts[2] = str(int(parts[2]) + 1)
        return kind, " ".join(parts)
    return kind, value


def remote_media(answer: bytes) -> MediaEndpoint | None:
    """The first audio stream of an SDP answer; None without one or when it is not SDP."""
    try:
        parsed = SessionDescription.parse(answer)
    except SipParseError:
        return None
    for media in parsed.media:
        address = parsed.connection_address(media)
        if media.media != "audio" or address is None:
            continue
        payloads = tuple(int(f) for f in media.formats if f.isdigit())
        known = {**STATIC_PAYLOAD_TYPES, **media.rtpmap}
        rtpmap = {int(pt): str(known[pt]) for pt in media.formats if pt.isdigit() and pt in known}
        return MediaEndpoint(address, media.port, payloads, rtpmap, parsed.direction(media))
    return None

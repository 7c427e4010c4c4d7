"""What an RTP session must do, read from our SDP and the far end's (RFC 3264 offer/answer).

Each side's description says what it wants to *receive*: we send to the far end's address
and port, with the payload types and ptime of the far end's description, in the direction
both descriptions allow. Works the same whether we offered or answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sipharness.sip.sdp import MediaDescription, SessionDescription

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
_SENDS = {"sendrecv", "sendonly"}
_RECEIVES = {"sendrecv", "recvonly"}
_G711 = ("PCMU", "PCMA")


class MediaNegotiationError(ValueError):
    """The descriptions leave no G.711 audio stream to run; ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    """The parameters of one audio stream, as ``MediaSession`` takes them."""

    local: tuple[str, int]  # our c= address and m= port
    remote: tuple[str, int]
    payload_type: int
    codec: str
    ptime: int
    dtmf_payload_type: int | None
    direction: Direction  # what we do
    rtcp_mux: bool
    remote_rtcp: tuple[str, int] | None


def _audio(description: SessionDescription, side: str) -> MediaDescription:
    for media in description.media:
        if media.media == "audio":
            return media
    raise MediaNegotiationError(f"{side} SDP has no audio m-line")


def _rtcp_address(media: MediaDescription, address: str) -> tuple[str, int] | None:
    """RFC 3605 ``a=rtcp:<port> [IN IP4 <address>]``, when present."""
    value = media.attribute("rtcp")
    if not value:
        return None
    parts = value.split()
    if not parts[0].isdigit():
        return None
    return (parts[3] if len(parts) >= 4 else address, int(parts[0]))


def _direction(ours: str, theirs: str) -> Direction:
    sends = ours in _SENDS and theirs in _RECEIVES
    receives = ours in _RECEIVES and theirs in _SENDS
    if sends and receives:
        return "sendrecv"
    if sends:
        return "sendonly"
    return "recvonly" if receives else "inactive"


def negotiate(
    local: SessionDescription | bytes, remote: SessionDescription | bytes
) -> NegotiatedMedia:
    """The first audio stream of our description ``local`` and the far end's ``remote``."""
    ours = local if isinstance(local, SessionDescription) else SessionDescription.parse(local)
    theirs = remote if isinstance(remote, SessionDescription) else SessionDescription.parse(remote)
    our_audio, their_audio = _audio(ours, "our"), _audio(theirs, "the far end's")
    if their_audio.port == 0:
        raise MediaNegotiationError("the far end refused the audio stream (port 0)")
    address = theirs.connection_address(their_audio)
    if address is None:
        raise MediaNegotiationError("the far end's audio has no c= address")
    our_address = ours.connection_address(our_audio) or "0.0.0.0"
    rtpmap = their_audio.rtpmap
    ours_map = our_audio.rtpmap
    names = {pt: rtpmap[pt].encoding.upper() for pt in their_audio.formats if pt in rtpmap}
    ours_names = {m.encoding.upper() for m in ours_map.values()}
    audio = [pt for pt, name in names.items() if name in _G711 and name in ours_names]
    if not audio:
        offered = ", ".join(names.values()) or "nothing"
        raise MediaNegotiationError(f"no G.711 codec in common (the far end has {offered})")
    events = [pt for pt, name in names.items() if name == "TELEPHONE-EVENT"]
    dtmf = int(events[0]) if events and "TELEPHONE-EVENT" in ours_names else None
    return NegotiatedMedia(
        local=(our_address, our_audio.port),
        remote=(address, their_audio.port),
        payload_type=int(audio[0]),
        codec=names[audio[0]],
        ptime=their_audio.ptime or our_audio.ptime or 20,
        dtmf_payload_type=dtmf,
        direction=_direction(ours.direction(our_audio), theirs.direction(their_audio)),
        rtcp_mux=our_audio.attribute("rtcp-mux") is not None
        and their_audio.attribute("rtcp-mux") is not None,
        remote_rtcp=_rtcp_address(their_audio, address),
    )

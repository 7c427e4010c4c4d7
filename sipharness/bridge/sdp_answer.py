"""The bridge's SDP answer (RFC 3264): same m-lines in order, one codec, mirrored direction."""

from __future__ import annotations

from dataclasses import dataclass, field

from sipharness.bridge.config import CODECS

_DIRECTIONS = {"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive",
               "sendrecv": "sendrecv"}


class OfferError(ValueError):
    """The offer cannot be answered: ``status`` says how (488 no codec, 400 unreadable)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class MediaOffer:
    """One m= section of the offer."""

    kind: str
    port: int
    proto: str
    formats: list[str]
    rtpmap: dict[str, str] = field(default_factory=dict)
    fmtp: dict[str, str] = field(default_factory=dict)
    direction: str = "sendrecv"
    address: str | None = None


@dataclass
class Offer:
    """What the bridge needs from an SDP offer."""

    address: str | None
    media: list[MediaOffer]
    direction: str = "sendrecv"


def parse_offer(body: str) -> Offer:
    """Read the parts of an SDP offer the answer depends on."""
    offer = Offer(address=None, media=[])
    current: MediaOffer | None = None
    for raw in body.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "m":
            parts = value.split()
            if len(parts) < 3 or not parts[1].split("/")[0].isdigit():
                raise OfferError(400, "malformed m= line")
            current = MediaOffer(kind=parts[0], port=int(parts[1].split("/")[0]),
                                 proto=parts[2], formats=parts[3:], direction=offer.direction)
            offer.media.append(current)
        elif kind == "c":
            addr = value.split()[-1].split("/")[0] if value.split() else None
            if current is None:
                offer.address = addr
            else:
                current.address = addr
        elif kind == "a":
            name, _, rest = value.partition(":")
            if name in _DIRECTIONS:
                if current is None:
                    offer.direction = name
                else:
                    current.direction = name
            elif current is not None and name in ("rtpmap", "fmtp"):
                pt, _, text = rest.partition(" ")
                (current.rtpmap if name == "rtpmap" else current.fmtp)[pt] = text
    if not offer.media:
        raise OfferError(488, "offer has no m= line")
    return offer


def _codec_name(media: MediaOffer, pt: str) -> str:
    if pt in media.rtpmap:
        return media.rtpmap[pt].split("/")[0].upper()
    for name, number in CODECS.items():
        if str(number) == pt:
            return name
    return ""


@dataclass
class Answer:
    """The chosen audio parameters plus the SDP text."""

    payload_type: int
    codec: str
    remote_address: str | None
    remote_port: int
    direction: str
    sdp: str


def build_answer(offer: Offer, *, codecs: list[str], address: str, rtp_port: int,
                 session_id: int, version: int) -> Answer:
    """Answer ``offer``: the first offered codec the bridge supports on the first audio stream,
    telephone-event kept with the offered payload type, every other stream refused (port 0)."""
    chosen: tuple[MediaOffer, str, str] | None = None
    family = "IP6" if ":" in address else "IP4"
    lines = [
        "v=0",
        f"o=sipharness {session_id} {version} IN {family} {address}",
        "s=sipharness bridge",
        f"c=IN {family} {address}",
        "t=0 0",
    ]
    wanted = [c.upper() for c in codecs]
    for media in offer.media:
        pick = None
        if media.kind == "audio" and media.port != 0 and chosen is None \
                and media.proto.upper() == "RTP/AVP":
            for pt in media.formats:
                if _codec_name(media, pt) in wanted:
                    pick = pt
                    break
        if pick is None:
            lines.append(f"m={media.kind} 0 {media.proto} {' '.join(media.formats[:1]) or '0'}")
            continue
        chosen = (media, pick, _codec_name(media, pick))
        fmts = [pick]
        dtmf = [pt for pt in media.formats if _codec_name(media, pt) == "TELEPHONE-EVENT"]
        fmts += dtmf[:1]
        lines.append(f"m=audio {rtp_port} RTP/AVP {' '.join(fmts)}")
        for pt in fmts:
            rtpmap = media.rtpmap.get(pt) or f"{_codec_name(media, pt)}/8000"
            lines.append(f"a=rtpmap:{pt} {rtpmap}")
            if pt in media.fmtp:
                lines.append(f"a=fmtp:{pt} {media.fmtp[pt]}")
        lines.append("a=ptime:20")
        lines.append(f"a={_DIRECTIONS.get(media.direction, 'sendrecv')}")
    if chosen is None:
        raise OfferError(488, "no common codec")
    media, pick, codec = chosen
    return Answer(payload_type=int(pick), codec=codec,
                  remote_address=media.address or offer.address, remote_port=media.port,
                  direction=_DIRECTIONS.get(media.direction, "sendrecv"),
                  sdp="\r\n".join(lines) + "\r\n")

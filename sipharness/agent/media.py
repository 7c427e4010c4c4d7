"""The SDP a call offers (default audio offer, hold/resume direction), the far end's media
address from its answer, and ``CallMedia``: the seam where an RTP session attaches to a call."""

from __future__ import annotations

import functools
import socket
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sipharness.media.engine import MediaEngine, MediaReport, MediaSession, shared_engine
from sipharness.sip.grammar import SipParseError
from sipharness.sip.identifiers import random_below
from sipharness.sip.sdp import DIRECTIONS, STATIC_PAYLOAD_TYPES, SessionDescription, make_offer

if TYPE_CHECKING:
    from sipharness.agent.call import Call


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
    ``session_id`` (also the o= version) is random when None.
    """
    before, after = _offer_around_origin(host, port)
    sid = random_below(2**31) if session_id is None else session_id
    return b"%s- %d %d %s" % (before, sid, sid, after)


@functools.lru_cache(maxsize=1024)
def _offer_around_origin(host: str, port: int) -> tuple[bytes, bytes]:
    """The default offer's bytes before and after the o= line's session id and version
    (the rest is the same for every call from ``host``:``port``; a load run makes one per
    call, and building it line by line each time showed in profiles)."""
    text = make_offer(host, port, session_id=0).to_bytes()
    before, marker, after = text.partition(b"o=- 0 0 ")
    assert marker, "make_offer writes 'o=- <id> <version> <address>'"
    return before + b"o=", after


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


class CallMedia:
    """One call's RTP: a UDP socket bound before the INVITE, so the offer names the port RTP
    really arrives on, and the ``MediaSession`` run on it once the call is answered.

    ``start``/``attach`` start G.711 RTP (and RFC 4733 DTMF when negotiated) on the
    process's shared engine; ``stop`` ends it and returns the ``MediaReport`` (loss, jitter,
    echo latency, MOS); ``close`` (or leaving the ``with`` block) also closes the socket.
    RTCP is off by default: the session has this one socket, and reports would leave from it.
    """

    def __init__(self, host: str = "127.0.0.1", *, engine: MediaEngine | None = None) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.host = host
        self.engine = engine
        self._socket: socket.socket | None = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._socket.bind((host, 0))
        except OSError:
            self._socket.close()
            raise
        self.port = int(self._socket.getsockname()[1])
        self.session: MediaSession | None = None
        self.report: MediaReport | None = None

    @property
    def closed(self) -> bool:
        return self._socket is None

    def offer(self, *, session_id: int | None = None) -> bytes:
        """The default audio offer (PCMU, PCMA, telephone-event, ptime 20) on this port."""
        return default_offer(self.host, self.port, session_id=session_id)

    def start(self, local_sdp: bytes, remote_sdp: bytes, **options: Any) -> MediaSession:
        """Start RTP for our SDP and the far end's (offer and answer, either way round).
        ``options`` go to ``MediaSession``. Raises ``MediaNegotiationError`` when the two
        leave no G.711 audio stream, ``RuntimeError`` when closed or already started."""
        if self._socket is None:
            raise RuntimeError("the call's media is closed")
        if self.session is not None:
            raise RuntimeError("the call's media is already started; use update()")
        options.setdefault("rtcp", False)
        engine = self.engine or shared_engine()
        session = MediaSession.from_sdp(engine, local_sdp, remote_sdp, local=self._socket,
                                        **options)  # fmt: skip
        self.session = session.start()
        return session

    def attach(self, call: Call, **options: Any) -> MediaSession | None:
        """Start RTP towards an answered call's far end (its 2xx SDP against the offer the
        call sent); None when the call has no offer or no answer with SDP."""
        answer = call.answer.body if call.answer is not None else b""
        if not call.local_sdp or not answer:
            return None
        return self.start(call.local_sdp, answer, **options)

    def update(self, local_sdp: bytes, remote_sdp: bytes) -> None:
        """Apply a re-INVITE's offer/answer; SSRC, sequence and timestamp continue."""
        if self.session is None:
            raise RuntimeError("the call's media is not started")
        self.session.update_from_sdp(local_sdp, remote_sdp)

    def stop(self) -> MediaReport | None:
        """Stop RTP (idempotent); the session's final report, None if it never started."""
        if self.session is not None and self.report is None:
            self.session.stop()
            self.report = self.session.stats()
        return self.report

    def close(self) -> None:
        """Stop RTP and close the socket. Idempotent."""
        self.stop()
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> CallMedia:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

"""The bridge's RTP side: one UDP port per call, echoing to the sender or playing tone/silence.

One thread owns every media socket; the SIP loop only allocates ports and posts start/stop."""

from __future__ import annotations

import contextlib
import math
import queue
import random
import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from sipharness.media import g711

_PTIME = 0.02
_SAMPLES = 160


def tone_frame(codec: str, index: int, freq: float = 440.0) -> bytes:
    """20 ms of a sine tone (or silence when ``freq`` is 0) in PCMU or PCMA."""
    start = index * _SAMPLES
    samples = (int(8000 * math.sin(2 * math.pi * freq * (start + i) / 8000))
               for i in range(_SAMPLES))
    return g711.encode(samples, "PCMA" if codec == "PCMA" else "PCMU")


@dataclass
class MediaSession:
    """RTP state of one call."""

    sock: socket.socket
    port: int
    mode: str
    payload_type: int = 0
    codec: str = "PCMU"
    remote: tuple[str, int] | None = None
    latched: bool = False
    ssrc: int = field(default_factory=lambda: random.getrandbits(32))
    seq: int = field(default_factory=lambda: random.getrandbits(16))
    timestamp: int = field(default_factory=lambda: random.getrandbits(32))
    next_send: float = 0.0
    frames: list[bytes] = field(default_factory=list)
    sent: int = 0
    received: int = 0
    last_rx: float = field(default_factory=time.monotonic)


class MediaEngine:
    """Allocates RTP ports from a range and runs echo/tone/silence for every call."""

    def __init__(self, host: str, ports: tuple[int, int], mode: str) -> None:
        self.host = host
        self.low, self.high = ports
        self.mode = mode
        self._commands: queue.Queue[tuple[str, MediaSession]] = queue.Queue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rtp")
        self._thread.start()

    def open(self) -> MediaSession | None:
        """Bind an even port in the range for a new call; None when none is free."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        span = (self.high - self.low) // 2
        first = random.randint(0, max(span, 0))
        for i in range(min(span + 1, 200)):
            port = self.low + 2 * ((first + i) % (span + 1))
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.bind((self.host, port))
            except OSError:
                sock.close()
                continue
            sock.setblocking(False)
            return MediaSession(sock=sock, port=port, mode=self.mode)
        return None

    def start(self, session: MediaSession, remote: tuple[str, int] | None,
              payload_type: int, codec: str) -> None:
        """Begin media for a call once it is answered."""
        session.remote = remote
        session.payload_type = payload_type
        session.codec = codec
        session.last_rx = time.monotonic()
        self._post("start", session)

    def update(self, session: MediaSession, remote: tuple[str, int] | None,
               payload_type: int, codec: str) -> None:
        """Apply a re-INVITE's new address or codec."""
        session.payload_type = payload_type
        session.codec = codec
        if not session.latched:
            session.remote = remote
        session.frames = []

    def stop(self, session: MediaSession) -> None:
        """End media for a call and free its port."""
        self._post("stop", session)

    def close(self) -> None:
        self._stop.set()
        self._wake_w.send(b"x")
        self._thread.join(timeout=2.0)
        self._wake_w.close()

    def _post(self, what: str, session: MediaSession) -> None:
        self._commands.put((what, session))
        try:
            self._wake_w.send(b"x")
        except OSError:
            return

    def _send_frame(self, s: MediaSession, now: float) -> None:
        if s.remote is None:
            return
        if not s.frames:
            freq = 440.0 if s.mode == "tone" else 0.0
            s.frames = [tone_frame(s.codec, i, freq) for i in range(50 if freq else 1)]
        payload = s.frames[s.sent % len(s.frames)]
        header = struct.pack("!BBHII", 0x80, s.payload_type & 0x7F, s.seq & 0xFFFF,
                             s.timestamp & 0xFFFFFFFF, s.ssrc)
        try:
            s.sock.sendto(header + payload, s.remote)
        except OSError:
            return
        s.seq += 1
        s.timestamp += _SAMPLES
        s.sent += 1

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ, None)
        senders: dict[int, MediaSession] = {}
        while not self._stop.is_set():
            now = time.monotonic()
            timeout = 1.0
            for s in senders.values():
                timeout = min(timeout, max(0.0, s.next_send - now))
            for key, _ in sel.select(timeout):
                session = key.data
                if session is None:
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(4096)
                    continue
                self._read(session)
            while True:
                try:
                    what, session = self._commands.get_nowait()
                except queue.Empty:
                    break
                if what == "start" and session.sock.fileno() >= 0:
                    sel.register(session.sock, selectors.EVENT_READ, session)
                    if session.mode in ("tone", "silence"):
                        session.next_send = time.monotonic()
                        senders[session.sock.fileno()] = session
                elif what == "stop":
                    if session.sock.fileno() >= 0:
                        senders.pop(session.sock.fileno(), None)
                        with contextlib.suppress(KeyError, ValueError):
                            sel.unregister(session.sock)
                    session.sock.close()
            now = time.monotonic()
            for s in senders.values():
                if s.next_send <= now:
                    self._send_frame(s, now)
                    s.next_send = max(s.next_send + _PTIME, now - 0.1)
        sel.close()
        self._wake_r.close()

    def _read(self, s: MediaSession) -> None:
        for _ in range(64):
            try:
                data, addr = s.sock.recvfrom(2048)
            except OSError:
                return
            s.received += 1
            s.last_rx = time.monotonic()
            if not s.latched or s.remote != addr:
                s.remote = addr[:2]
                s.latched = True
            if s.mode == "echo":
                try:
                    s.sock.sendto(data, addr)
                except OSError:
                    return


def media_port_in_use(port: int) -> bool:
    """True when a UDP socket is bound to ``port`` on loopback (for tests of port release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


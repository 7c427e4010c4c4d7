"""What the bridge tells the world about rooms: 100ms-style webhooks and the roster API."""

from __future__ import annotations

import hashlib
import heapq
import http.client
import json
import queue
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


def rfc3339(ts: float) -> str:
    """A UTC RFC 3339 timestamp with milliseconds."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


@dataclass
class Peer:
    """A SIP caller present in a room."""

    room_id: str
    room_name: str
    session_id: str
    peer_id: str
    user_id: str
    user_name: str
    role: str
    joined_at: float
    call_id: str = ""

    def data(self) -> dict[str, Any]:
        return {"room_id": self.room_id, "room_name": self.room_name,
                "session_id": self.session_id, "peer_id": self.peer_id,
                "user_id": self.user_id, "user_name": self.user_name, "role": self.role,
                "joined_at": rfc3339(self.joined_at), "type": "sip"}


def envelope(event_type: str, peer: Peer, app_id: str, account_id: str, *,
             left_at: float | None = None, reason: str = "") -> dict[str, Any]:
    """A 100ms webhook envelope for ``peer.join.success`` or ``peer.leave.success``."""
    now = time.time()
    data = peer.data()
    if left_at is not None:
        data["left_at"] = rfc3339(left_at)
        data["duration"] = max(0, round(left_at - peer.joined_at))
        data["reason"] = reason
    return {"version": "2.0", "id": str(uuid.uuid4()), "app_id": app_id,
            "account_id": account_id, "timestamp": rfc3339(now), "type": event_type,
            "data": data}


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    body: bytes = field(compare=False)
    first_try: float = field(compare=False, default=0.0)
    attempt: int = field(compare=False, default=0)


class WebhookSender:
    """Delivers envelopes as JSON POSTs from worker threads, never blocking the SIP loop.

    Each envelope goes to one worker chosen by its peer, so a peer's join is posted
    before its leave. A delivery that does not get a 2xx is retried at the configured
    offsets from the first attempt (default +1 s, +3 s, +10 s) with the same envelope."""

    def __init__(self, url: str, secret_header: str, secret: str,
                 retries: list[float], workers: int = 2) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"webhook URL must be http(s)://host[:port]/path, got {url!r}")
        self.url = url
        self._parts = parts
        self._headers = {"Content-Type": "application/json"}
        if secret_header:
            self._headers[secret_header] = secret
        self.retries = list(retries)
        self._queues: list[queue.Queue[_Delivery | None]] = [queue.Queue()
                                                             for _ in range(workers)]
        self._pending = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._seq = 0
        self.delivered = 0
        self.failed = 0
        self._threads = [threading.Thread(target=self._work, args=(q,), daemon=True,
                                          name=f"webhook-{i}")
                         for i, q in enumerate(self._queues)]
        for t in self._threads:
            t.start()

    def send(self, env: dict[str, Any]) -> None:
        """Queue one envelope for delivery."""
        body = json.dumps(env, separators=(",", ":")).encode()
        key = env.get("data", {}).get("peer_id", "")
        index = int(hashlib.md5(key.encode()).hexdigest()[:8], 16) % len(self._queues)
        with self._lock:
            self._seq += 1
            self._pending += 1
            seq = self._seq
        self._queues[index].put(_Delivery(time.monotonic(), seq, body))

    def drain(self, timeout: float) -> bool:
        """Wait until every queued envelope is delivered or given up; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self) -> None:
        for q in self._queues:
            q.put(None)
        for t in self._threads:
            t.join(timeout=2.0)

    def _connect(self) -> http.client.HTTPConnection:
        host = self._parts.hostname or "127.0.0.1"
        if self._parts.scheme == "https":
            return http.client.HTTPSConnection(host, self._parts.port, timeout=5.0)
        return http.client.HTTPConnection(host, self._parts.port, timeout=5.0)

    def _post(self, conn: http.client.HTTPConnection | None,
              body: bytes) -> tuple[bool, http.client.HTTPConnection | None]:
        path = self._parts.path or "/"
        if self._parts.query:
            path += "?" + self._parts.query
        for _ in range(2):
            if conn is None:
                conn = self._connect()
            try:
                if conn.sock is None:
                    conn.connect()
                    if conn.sock is not None:
                        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.request("POST", path, body=body, headers=self._headers)
                resp = conn.getresponse()
                resp.read()
                if resp.will_close:
                    conn.close()
                    conn = None
                return 200 <= resp.status < 300, conn
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
        return False, conn

    def _done(self, ok: bool) -> None:
        with self._idle:
            self._pending -= 1
            if ok:
                self.delivered += 1
            else:
                self.failed += 1
            self._idle.notify_all()

    def _work(self, q: queue.Queue[_Delivery | None]) -> None:
        waiting: list[_Delivery] = []
        conn: http.client.HTTPConnection | None = None
        while True:
            now = time.monotonic()
            if waiting and waiting[0].due <= now:
                item = heapq.heappop(waiting)
            else:
                try:
                    got = q.get(timeout=waiting[0].due - now if waiting else None)
                except queue.Empty:
                    continue
                if got is None:
                    break
                item = got
            if item.attempt == 0:
                item.first_try = time.monotonic()
            ok, conn = self._post(conn, item.body)
            if ok or item.attempt >= len(self.retries):
                self._done(ok)
                continue
            item.due = item.first_try + self.retries[item.attempt]
            item.attempt += 1
            heapq.heappush(waiting, item)
        if conn is not None:
            conn.close()


class Roster:
    """Who is in which room now; read by the roster API, written by the SIP loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rooms: dict[str, dict[str, Peer]] = {}

    def join(self, peer: Peer) -> None:
        with self._lock:
            self._rooms.setdefault(peer.room_id, {})[peer.peer_id] = peer

    def leave(self, peer: Peer) -> None:
        with self._lock:
            room = self._rooms.get(peer.room_id, {})
            room.pop(peer.peer_id, None)
            if not room:
                self._rooms.pop(peer.room_id, None)

    def peers(self, room_id: str) -> list[Peer]:
        with self._lock:
            return list(self._rooms.get(room_id, {}).values())


class _ThreadingHTTPServer6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


_PEERS_PATH = re.compile(r"^/v2/active-rooms/([^/?#]+)/peers/?$")


class RosterServer:
    """``GET /v2/active-rooms/<room_id>/peers`` → ``{"peers": {peer_id: {...}}}`` (100ms shape)."""

    def __init__(self, roster: Roster, host: str, port: int) -> None:
        roster_ref = roster

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                match = _PEERS_PATH.match(self.path.split("?", 1)[0])
                if not match:
                    self._reply(404, {"code": 404, "message": "not found"})
                    return
                peers = roster_ref.peers(match.group(1))
                body = {"peers": {p.peer_id: {
                    "id": p.peer_id, "name": p.user_name, "user_id": p.user_id,
                    "role": p.role, "joined_at": rfc3339(p.joined_at), "type": "sip",
                    "session_id": p.session_id, "room_id": p.room_id} for p in peers}}
                self._reply(200, body)

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        server_class = _ThreadingHTTPServer6 if ":" in host else ThreadingHTTPServer
        self.httpd = server_class((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.host = host
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True,
                                        name="roster-api")
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

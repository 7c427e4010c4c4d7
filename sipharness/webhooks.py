"""A webhook receiver for tests and runners: collects the JSON POSTs a bridge sends.

Stdlib only; works in a plain process and under gevent monkey-patching (Locust)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class WebhookEvent:
    """One POST received: its JSON body, headers (names lower-cased) and how it was answered."""

    body: Any
    headers: dict[str, str]
    path: str
    status: int
    received_at: float
    raw: bytes = field(repr=False, default=b"")

    @property
    def type(self) -> str | None:
        """The envelope's ``type`` (``peer.join.success`` ...), None when not an envelope."""
        return self.body.get("type") if isinstance(self.body, dict) else None

    @property
    def id(self) -> str | None:
        """The envelope's ``id``; retries of one delivery share it."""
        return self.body.get("id") if isinstance(self.body, dict) else None

    @property
    def data(self) -> dict[str, Any]:
        """The envelope's ``data`` object (empty when absent)."""
        data = self.body.get("data") if isinstance(self.body, dict) else None
        return data if isinstance(data, dict) else {}


Matcher = str | Callable[[WebhookEvent], bool]


class _QuietHTTPServer(ThreadingHTTPServer):
    """Keeps a sender hanging up mid-connection out of the test output."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 (port 0 by default) answering every POST with 200.

    ``fail_next(n, status=500)`` makes it answer the next ``n`` POSTs with ``status``
    instead (to exercise retries). ``events()`` lists the POSTs it accepted (2xx);
    ``deliveries()`` lists every POST, accepted or not.

    Use as a context manager, or call ``start()`` and ``close()``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, path: str = "/webhooks",
                 *, fail_first: int = 0, fail_status: int = 500) -> None:
        self._host = host
        self._port = port
        self._path = path
        self._cond = threading.Condition()
        self._deliveries: list[WebhookEvent] = []
        self._fail_left = fail_first
        self._fail_status = fail_status
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle
    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length > 0 else b""
                status = receiver._record(raw, self.path,
                                          {k.lower(): v for k, v in self.headers.items()})
                body = b'{"ok":true}' if status < 300 else b'{"ok":false}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = _QuietHTTPServer((self._host, self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True,
                                        name="webhook-receiver")
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def url(self) -> str:
        """Where to point the bridge's webhook URL."""
        if self._server is None:
            raise RuntimeError("WebhookReceiver is not started")
        port = self._server.server_address[1]
        return f"http://{self._host}:{port}{self._path}"

    # ----- behaviour
    def fail_next(self, count: int, status: int = 500) -> None:
        """Answer the next ``count`` POSTs with ``status`` (default 500)."""
        with self._cond:
            self._fail_left = count
            self._fail_status = status

    def _record(self, raw: bytes, path: str, headers: dict[str, str]) -> int:
        try:
            body: Any = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            body = None
        with self._cond:
            status = 200
            if self._fail_left > 0:
                self._fail_left -= 1
                status = self._fail_status
            self._deliveries.append(WebhookEvent(body=body, headers=headers, path=path,
                                                 status=status, received_at=time.time(),
                                                 raw=raw))
            self._cond.notify_all()
        return status

    # ----- reading
    def deliveries(self, type: str | None = None) -> list[WebhookEvent]:
        """Every POST received, accepted or refused, in arrival order."""
        with self._cond:
            return [e for e in self._deliveries if type is None or e.type == type]

    def events(self, type: str | None = None) -> list[WebhookEvent]:
        """The POSTs answered 2xx (optionally only of one envelope ``type``), in order."""
        return [e for e in self.deliveries(type) if 200 <= e.status < 300]

    def clear(self) -> None:
        """Forget everything received so far."""
        with self._cond:
            self._deliveries.clear()

    def wait_for(self, match: Matcher, timeout: float = 5.0) -> WebhookEvent:
        """The first accepted event matching ``match`` (a type or a predicate).

        Raises TimeoutError naming what arrived instead."""
        def hit() -> WebhookEvent | None:
            for event in self._deliveries:
                if not 200 <= event.status < 300:
                    continue
                if (event.type == match) if isinstance(match, str) else match(event):
                    return event
            return None

        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = hit()
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [e.type for e in self._deliveries]
                    raise TimeoutError(f"no webhook matching {match!r} within {timeout:g}s; "
                                       f"received: {seen}")
                self._cond.wait(min(left, 0.2))

    def wait_count(self, type: str, count: int, timeout: float = 10.0) -> list[WebhookEvent]:
        """Wait until ``count`` accepted events of ``type`` have arrived; returns them all.

        Raises TimeoutError with how many arrived."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [e for e in self._deliveries if e.type == type and 200 <= e.status < 300]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(got)} of {count} {type} webhooks within "
                                       f"{timeout:g}s")
                self._cond.wait(min(left, 0.2))

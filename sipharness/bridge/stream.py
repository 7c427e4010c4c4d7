"""SIP over TCP and TLS for sippy, which only ships UDP and WSS listeners.

A listener thread accepts connections; each connection thread frames messages by
Content-Length (RFC 3261 §18.3) and hands them to sippy's transaction manager on its
event loop, exactly as sippy's Udp_server does. Responses go back on the same connection."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

from sippy.Core.EventDispatcher import ED2
from sippy.Network_server import Network_server, Network_server_opts, Remote_address
from sippy.Time.MonoTime import MonoTime

from sipharness.bridge.framing import FramingError, frame_messages


class StreamConnection(Network_server):
    """One accepted TCP/TLS connection, seen by sippy as a network server of its own."""

    def __init__(self, sock: socket.socket, peer: tuple[str, int], transport: str,
                 uopts: Network_server_opts, on_close: Callable[[StreamConnection], None]) -> None:
        super().__init__(uopts)
        self.transport = transport
        self.sock = sock
        self.peer = (peer[0], peer[1])
        self._lock = threading.Lock()
        self._closed = False
        self._on_close = on_close
        self._reader = threading.Thread(target=self._read_loop, daemon=True,
                                        name=f"{transport}-{peer[0]}:{peer[1]}")
        self._reader.start()

    def send_to(self, data: Any, address: object, delayed: bool = False) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        with self._lock:
            if self._closed:
                return
            try:
                self.sock.sendall(data)
            except OSError:
                self._closed = True

    def _read_loop(self) -> None:
        buffer = bytearray()
        address = Remote_address(self.peer, self.transport)
        try:
            if isinstance(self.sock, ssl.SSLSocket):
                self.sock.do_handshake()
            self.sock.settimeout(None)
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                buffer += chunk
                for message in frame_messages(buffer):
                    ED2.callFromThread(self.handle_read, message, address, MonoTime())
        except (OSError, FramingError, ValueError):
            pass
        finally:
            self.shutdown()

    def join(self) -> None:
        return

    def shutdown(self) -> None:
        with self._lock:
            if self._closed and self.sock.fileno() < 0:
                return
            self._closed = True
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
        self._on_close(self)


class StreamListener:
    """Accepts SIP connections on one TCP port, optionally wrapping them in TLS."""

    def __init__(self, host: str, port: int, data_callback: Callable[..., Any],
                 tls: ssl.SSLContext | None = None, reuse_port: bool = False) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.sock.bind((host, port))
        self.sock.listen(128)
        self.host = host
        self.port = int(self.sock.getsockname()[1])
        self.transport = "tls" if tls is not None else "tcp"
        self.tls = tls
        self.uopts = Network_server_opts((host, self.port), data_callback)
        self.connections: set[StreamConnection] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name=f"{self.transport}-listener")
        self._thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, peer = self.sock.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                sock.settimeout(10.0)
                try:
                    sock = self.tls.wrap_socket(sock, server_side=True,
                                                do_handshake_on_connect=False)
                except (OSError, ssl.SSLError):
                    sock.close()
                    continue
            conn = StreamConnection(sock, peer, self.transport, self.uopts, self._forget)
            with self._lock:
                self.connections.add(conn)

    def _forget(self, conn: StreamConnection) -> None:
        with self._lock:
            self.connections.discard(conn)

    def shutdown(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        with self._lock:
            conns = list(self.connections)
        for conn in conns:
            conn.shutdown()

"""gevent SIP transports: UDP datagrams, TCP and TLS connections, each delivering parsed messages.

A transport owns its sockets and one receive greenlet per socket (per connection for TCP/TLS);
every message it receives goes to one handler as a :class:`Received`, stamped with the time.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import gevent
import gevent.lock
import gevent.pool
import gevent.socket
import gevent.ssl

from sipharness.sip.message import Request, Response, SipParseError, StreamParser, parse_message

log = logging.getLogger(__name__)

HostPort = tuple[str, int]
TransportName = Literal["UDP", "TCP", "TLS"]
Handler = Callable[["Received"], None]

UDP_MAX = 65535
RECEIVE_BUFFER = 4 * 1024 * 1024


class TransportError(OSError):
    """Sending failed: no connection to the far end, refused, reset or TLS handshake failure."""


@dataclass(slots=True)
class Received:
    """One message (or one unparseable datagram/stream chunk) as it arrived."""

    data: bytes
    message: Request | Response | None
    error: str | None
    source: HostPort
    local: HostPort
    transport: TransportName
    flow: Connection | None
    time: float
    wall: float


def address_family(host: str) -> socket.AddressFamily:
    """AF_INET6 for an IPv6 literal (``::1`` or ``[::1]``), else AF_INET."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def bare_host(host: str) -> str:
    """``[::1]`` -> ``::1``; other hosts unchanged."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def host_port(addr: tuple[object, ...]) -> HostPort:
    """A socket address (v4 or v6 tuple) reduced to ``(host, port)``."""
    return str(addr[0]), int(addr[1])  # type: ignore[call-overload]


def resolve(host: str, port: int, family: int = 0) -> HostPort:
    """Resolve a host name to one numeric address (literals are returned unchanged)."""
    host = bare_host(host)
    infos = gevent.socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)
    if not infos:
        raise TransportError(f"cannot resolve {host}")
    return host_port(infos[0][4])


def local_address_for(remote: HostPort) -> str:
    """The local address the kernel routes to ``remote`` from (no packet is sent)."""
    with socket.socket(address_family(remote[0]), socket.SOCK_DGRAM) as probe:
        probe.connect(remote)
        return str(probe.getsockname()[0])


def _no_delay(sock: socket.socket) -> None:
    """Send each SIP message at once: Nagle's algorithm would hold small segments back."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _deliver(handler: Handler | None, item: Received) -> None:
    if handler is None:
        return
    try:
        handler(item)
    except Exception:
        log.exception("handler failed on a message from %s:%s", *item.source)


class Transport(ABC):
    """One local SIP endpoint: sends bytes to a remote address, hands received messages on."""

    name: TransportName
    reliable: bool

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = bare_host(host)
        self.family = address_family(self.host)
        self.local: HostPort = (self.host, port)
        self.handler: Handler | None = None
        self.closed = False
        self._greenlets = gevent.pool.Group()

    @property
    def sent_by(self) -> str:
        """The Via sent-by of this transport: ``host:port`` (IPv6 in brackets)."""
        host, port = self.local
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def sent_by_for(self, remote: HostPort) -> str:
        """The sent-by to use towards ``remote``: this transport's own address, or, when
        it does not listen (a TLS client), the local end of its connection to ``remote``."""
        return self.sent_by

    def start(self, handler: Handler) -> Transport:
        """Begin receiving; every message goes to ``handler`` (called in a receive greenlet)."""
        self.handler = handler
        self._start()
        return self

    @abstractmethod
    def _start(self) -> None: ...

    @abstractmethod
    def send(self, data: bytes, remote: HostPort, *, flow: Connection | None = None) -> HostPort:
        """Send ``data`` to ``remote`` (on ``flow`` when given and open); return the local
        address it left from. Raises :class:`TransportError` when it cannot be sent."""

    def close(self) -> None:
        """Stop every receive greenlet and close every socket; safe to call twice."""
        if self.closed:
            return
        self.closed = True
        self._close_sockets()
        self._greenlets.kill(block=False)

    @abstractmethod
    def _close_sockets(self) -> None: ...

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class UdpTransport(Transport):
    """One UDP socket; one receive greenlet; a datagram is one message."""

    name: TransportName = "UDP"
    reliable = False

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.sock = gevent.socket.socket(self.family, socket.SOCK_DGRAM)
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self.sock.bind((self.host, port))
        self.local = host_port(self.sock.getsockname())

    def _start(self) -> None:
        self._greenlets.spawn(self._receive_loop)

    def _receive_loop(self) -> None:
        while not self.closed:
            try:
                data, addr = self.sock.recvfrom(UDP_MAX)
            except OSError:
                if self.closed:
                    return
                gevent.sleep(0.001)  # e.g. a queued ICMP error: do not spin
                continue
            now, wall = time.monotonic(), time.time()
            if not data.strip():
                continue  # CRLF keep-alive
            message: Request | Response | None
            try:
                message, error = parse_message(data), None
            except SipParseError as exc:
                message, error = None, str(exc)
            item = Received(data, message, error, host_port(addr), self.local, "UDP", None,
                            now, wall)
            _deliver(self.handler, item)

    def send(self, data: bytes, remote: HostPort, *, flow: Connection | None = None) -> HostPort:
        try:
            self.sock.sendto(data, remote)
        except OSError as exc:
            raise TransportError(f"UDP send to {remote[0]}:{remote[1]} failed: {exc}") from exc
        return self.local

    def _close_sockets(self) -> None:
        self.sock.close()


@dataclass(eq=False)
class Connection:
    """One TCP or TLS connection (a *flow*): responses and in-dialog requests reuse it."""

    sock: socket.socket
    remote: HostPort
    local: HostPort
    transport: TransportName
    parser: StreamParser = field(default_factory=StreamParser)
    write_lock: gevent.lock.Semaphore = field(default_factory=gevent.lock.Semaphore)
    open: bool = True

    def sendall(self, data: bytes) -> None:
        with self.write_lock:
            self.sock.sendall(data)

    def close(self) -> None:
        self.open = False
        with contextlib.suppress(OSError):
            self.sock.close()


class TcpTransport(Transport):
    """TCP: connects to far ends on demand and reuses the connection per remote address;
    listens on its own port for connections the far end opens (requests it sends us)."""

    name: TransportName = "TCP"
    reliable = True

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, listen: bool = True,
                 connect_timeout: float = 5.0) -> None:
        super().__init__(host, port)
        self.connect_timeout = connect_timeout
        self.connections: dict[HostPort, Connection] = {}
        self._connect_locks: dict[HostPort, gevent.lock.Semaphore] = {}
        self.listener: socket.socket | None = None
        if listen:
            lsock = gevent.socket.socket(self.family, socket.SOCK_STREAM)
            lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            lsock.bind((self.host, port))
            lsock.listen(128)
            self.listener = lsock
            self.local = host_port(lsock.getsockname())

    def _start(self) -> None:
        if self.listener is not None:
            self._greenlets.spawn(self._accept_loop)

    def _accept_loop(self) -> None:
        assert self.listener is not None
        while not self.closed:
            try:
                sock, addr = self.listener.accept()
            except OSError:
                if self.closed:
                    return
                gevent.sleep(0.01)
                continue
            self._greenlets.spawn(self._serve_accepted, sock, host_port(addr))

    def _serve_accepted(self, sock: socket.socket, remote: HostPort) -> None:
        try:
            sock = self._wrap_server(sock)
        except (OSError, ssl.SSLError) as exc:
            log.info("%s handshake from %s:%s failed: %s", self.name, *remote, exc)
            with contextlib.suppress(OSError):
                sock.close()
            return
        _no_delay(sock)
        conn = Connection(sock, remote, host_port(sock.getsockname()), self.name)
        self.connections.setdefault(remote, conn)
        self._read_loop(conn)

    def _wrap_server(self, sock: socket.socket) -> socket.socket:
        return sock

    def _wrap_client(self, sock: socket.socket, remote: HostPort) -> socket.socket:
        return sock

    def _read_loop(self, conn: Connection) -> None:
        try:
            while conn.open and not self.closed:
                try:
                    chunk = conn.sock.recv(UDP_MAX)
                except OSError:
                    return
                now, wall = time.monotonic(), time.time()
                if not chunk:
                    return
                try:
                    messages = conn.parser.feed(chunk)
                except SipParseError as exc:
                    item = Received(chunk, None, str(exc), conn.remote, conn.local, self.name,
                                    conn, now, wall)
                    _deliver(self.handler, item)
                    return
                for message in messages:
                    item = Received(message.to_bytes(), message, None, conn.remote, conn.local,
                                    self.name, conn, now, wall)
                    _deliver(self.handler, item)
        finally:
            conn.close()
            if self.connections.get(conn.remote) is conn:
                del self.connections[conn.remote]

    def sent_by_for(self, remote: HostPort) -> str:
        if self.listener is not None:
            return self.sent_by
        host, port = self.connect(remote).local
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def connect(self, remote: HostPort) -> Connection:
        """The open connection to ``remote``, opening (and handshaking) one if needed."""
        conn = self.connections.get(remote)
        if conn is not None and conn.open:
            return conn
        lock = self._connect_locks.setdefault(remote, gevent.lock.Semaphore())
        with lock:
            conn = self.connections.get(remote)
            if conn is not None and conn.open:
                return conn
            sock = gevent.socket.socket(address_family(remote[0]), socket.SOCK_STREAM)
            sock.settimeout(self.connect_timeout)
            _no_delay(sock)
            try:
                sock.connect(remote)
                sock = self._wrap_client(sock, remote)
            except (OSError, ssl.SSLError) as exc:
                with contextlib.suppress(OSError):
                    sock.close()
                raise TransportError(
                    f"{self.name} connection to {remote[0]}:{remote[1]} failed: {exc}") from exc
            sock.settimeout(None)
            conn = Connection(sock, remote, host_port(sock.getsockname()), self.name)
            self.connections[remote] = conn
            self._greenlets.spawn(self._read_loop, conn)
            return conn

    def send(self, data: bytes, remote: HostPort, *, flow: Connection | None = None) -> HostPort:
        conn = flow if flow is not None and flow.open else self.connect(remote)
        try:
            conn.sendall(data)
        except OSError as exc:
            conn.close()
            raise TransportError(
                f"{self.name} send to {remote[0]}:{remote[1]} failed: {exc}") from exc
        return conn.local

    def _close_sockets(self) -> None:
        if self.listener is not None:
            with contextlib.suppress(OSError):
                self.listener.close()
        for conn in list(self.connections.values()):
            conn.close()
        self.connections.clear()


def tls_client_context(ca_file: str | None = None, *, insecure: bool = False) -> ssl.SSLContext:
    """A gevent TLS client context: system CAs (or ``ca_file``); ``insecure`` skips checks."""
    ctx = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    else:
        ctx.load_default_certs()
    return ctx


def tls_server_context(cert_file: str, key_file: str | None = None) -> ssl.SSLContext:
    """A gevent TLS server context from a PEM certificate chain (and key)."""
    ctx = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


class TlsTransport(TcpTransport):
    """TLS over TCP (RFC 3261 §26.3.1). Listens only when given a server context."""

    name: TransportName = "TLS"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 client_context: ssl.SSLContext | None = None,
                 server_context: ssl.SSLContext | None = None,
                 server_name: str | None = None, connect_timeout: float = 5.0) -> None:
        super().__init__(host, port, listen=server_context is not None,
                         connect_timeout=connect_timeout)
        self.client_context = client_context or tls_client_context()
        for ctx in (self.client_context, server_context):
            if ctx is not None and not isinstance(ctx, gevent.ssl.SSLContext):
                raise TypeError("TLS contexts must be gevent.ssl.SSLContext "
                                "(see tls_client_context / tls_server_context)")
        self.server_context = server_context
        self.server_name = server_name

    def _wrap_client(self, sock: socket.socket, remote: HostPort) -> socket.socket:
        name = self.server_name or remote[0]
        return self.client_context.wrap_socket(sock, server_hostname=name)

    def _wrap_server(self, sock: socket.socket) -> socket.socket:
        assert self.server_context is not None
        sock.settimeout(self.connect_timeout)
        wrapped = self.server_context.wrap_socket(sock, server_side=True)
        wrapped.settimeout(None)
        return wrapped


def open_transport(kind: str, host: str = "127.0.0.1", port: int = 0, *,
                   client_context: ssl.SSLContext | None = None,
                   server_context: ssl.SSLContext | None = None,
                   server_name: str | None = None,
                   connect_timeout: float = 5.0) -> Transport:
    """A new, not yet started transport of ``kind`` (``udp``, ``tcp`` or ``tls``)."""
    match kind.lower():
        case "udp":
            return UdpTransport(host, port)
        case "tcp":
            return TcpTransport(host, port, connect_timeout=connect_timeout)
        case "tls":
            return TlsTransport(host, port, client_context=client_context,
                                server_context=server_context, server_name=server_name,
                                connect_timeout=connect_timeout)
    raise ValueError(f"unknown transport {kind!r}: use udp, tcp or tls")

"""sipharness.net over real loopback sockets: UDP, TCP and TLS framing, flows, deadlines."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from typing import TypeVar

import gevent
import gevent.queue
import pytest
import trustme

from sipharness.net.timers import DeadlineScheduler
from sipharness.net.transport import (
    Received,
    TcpTransport,
    TlsTransport,
    Transport,
    TransportError,
    UdpTransport,
    tls_client_context,
    tls_server_context,
)
from sipharness.sip.message import Request, Response

pytestmark = pytest.mark.integration


def options(n: int, sent_by: str = "127.0.0.1:5060", body: bytes = b"") -> bytes:
    head = (
        f"OPTIONS sip:room@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {sent_by};branch=z9hG4bK{n:06d};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=f{n}\r\nTo: <sip:room@127.0.0.1>\r\n"
        f"Call-ID: call-{n}@127.0.0.1\r\nCSeq: {n} OPTIONS\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Inbox:
    """Collects what a transport receives; ``get`` waits a bounded time."""

    def __init__(self) -> None:
        self.queue: gevent.queue.Queue[Received] = gevent.queue.Queue()

    def __call__(self, item: Received) -> None:
        self.queue.put(item)

    def get(self, timeout: float = 2.0) -> Received:
        return self.queue.get(timeout=timeout)

    def empty_after(self, seconds: float) -> bool:
        gevent.sleep(seconds)
        return self.queue.empty()


@pytest.fixture
def transports() -> Iterator[list[Transport]]:
    opened: list[Transport] = []
    yield opened
    for t in opened:
        t.close()


T = TypeVar("T", bound=Transport)


def started(opened: list[Transport], transport: T) -> tuple[T, Inbox]:
    inbox = Inbox()
    opened.append(transport.start(inbox))
    return transport, inbox


def test_udp_datagram_arrives_parsed_and_byte_identical(transports: list[Transport]) -> None:
    a, _ = started(transports, UdpTransport())
    b, inbox = started(transports, UdpTransport())
    data = options(1, body=b"x" * 3000)
    a.send(data, b.local)
    got = inbox.get()
    assert isinstance(got.message, Request)
    assert got.data == data and got.message.to_bytes() == data
    assert got.source == a.local and got.local == b.local and got.transport == "UDP"
    assert got.time <= time.monotonic()


def test_udp_garbage_is_reported_and_keepalives_are_ignored(
    transports: list[Transport],
) -> None:
    a, _ = started(transports, UdpTransport())
    b, inbox = started(transports, UdpTransport())
    a.send(b"\r\n\r\n", b.local)
    a.send(b"this is not SIP\r\n\r\n", b.local)
    got = inbox.get()
    assert got.message is None and got.error
    assert got.data == b"this is not SIP\r\n\r\n"
    assert inbox.empty_after(0.05)


def test_tcp_frames_messages_split_and_joined_in_writes(transports: list[Transport]) -> None:
    server, inbox = started(transports, TcpTransport())
    raw = socket.create_connection(server.local, timeout=2)
    try:
        first, second, third = options(1, body=b"a=1"), options(2), options(3, body=b"hello")
        raw.sendall(first + second + third[:10])
        gevent.sleep(0.02)
        raw.sendall(third[10:40])
        gevent.sleep(0.02)
        raw.sendall(third[40:])
        got = [inbox.get() for _ in range(3)]
    finally:
        raw.close()
    assert [g.data for g in got] == [first, second, third]
    assert all(g.transport == "TCP" and g.flow is not None for g in got)


def test_tcp_reuses_one_connection_both_ways(transports: list[Transport]) -> None:
    client, client_inbox = started(transports, TcpTransport())
    server, server_inbox = started(transports, TcpTransport())
    client.send(options(1), server.local)
    client.send(options(2), server.local)
    first, second = server_inbox.get(), server_inbox.get()
    assert first.flow is second.flow
    assert len(client.connections) == 1 and len(server.connections) == 1
    reply = b"SIP/2.0 200 OK\r\n" + options(1).split(b"\r\n", 1)[1]
    server.send(reply, first.source, flow=first.flow)
    got = client_inbox.get()
    assert isinstance(got.message, Response) and got.message.status == 200
    assert got.source == server.local
    assert len(server.connections) == 1  # the answer did not open a connection back


def test_tcp_connect_to_a_closed_port_is_a_transport_error(
    transports: list[Transport], loopback_port: int
) -> None:
    client, _ = started(transports, TcpTransport(connect_timeout=1.0))
    with pytest.raises(TransportError, match=r"connection to 127\.0\.0\.1"):
        client.send(options(1), ("127.0.0.1", loopback_port))


def test_tcp_garbage_on_a_stream_closes_that_connection(transports: list[Transport]) -> None:
    server, inbox = started(transports, TcpTransport())
    raw = socket.create_connection(server.local, timeout=2)
    try:
        raw.sendall(b"GARBAGE\r\n\r\n")
        got = inbox.get()
        assert got.message is None and got.error
        raw.settimeout(2)
        assert raw.recv(10) == b""  # the server closed the connection
    finally:
        raw.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def tls_pair(ca: trustme.CA) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    with cert.private_key_and_cert_chain_pem.tempfile() as pem:
        server_ctx = tls_server_context(pem)
    client_ctx = tls_client_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx


def test_tls_exchanges_messages_with_a_trusted_certificate(
    transports: list[Transport], ca: trustme.CA
) -> None:
    server_ctx, client_ctx = tls_pair(ca)
    server, server_inbox = started(transports, TlsTransport(server_context=server_ctx))
    client, client_inbox = started(transports, TlsTransport(client_context=client_ctx))
    client.send(options(7), server.local)
    got = server_inbox.get()
    assert got.transport == "TLS" and got.data == options(7)
    server.send(b"SIP/2.0 200 OK\r\n" + options(7).split(b"\r\n", 1)[1], got.source,
                flow=got.flow)  # fmt: skip
    answer = client_inbox.get()
    assert isinstance(answer.message, Response) and answer.message.status == 200


def test_tls_refuses_an_untrusted_certificate(
    transports: list[Transport], ca: trustme.CA
) -> None:
    server_ctx, _ = tls_pair(ca)
    server, _ = started(transports, TlsTransport(server_context=server_ctx))
    client, _ = started(transports, TlsTransport(client_context=tls_client_context()))
    with pytest.raises(TransportError, match=r"(?i)certificate"):
        client.send(options(8), server.local)
    insecure, _ = started(transports,
                          TlsTransport(client_context=tls_client_context(insecure=True)))
    insecure.send(options(9), server.local)  # --tls-insecure accepts it


def test_tls_needs_gevent_contexts() -> None:
    with pytest.raises(TypeError, match="gevent"):
        TlsTransport(client_context=ssl.create_default_context())


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
@pytest.mark.parametrize("kind", [UdpTransport, TcpTransport])
def test_ipv6_loopback(transports: list[Transport], kind: type[Transport]) -> None:
    a, _ = started(transports, kind("::1"))
    b, inbox = started(transports, kind("[::1]"))
    assert a.sent_by.startswith("[::1]:")
    a.send(options(3, sent_by=a.sent_by), b.local)
    got = inbox.get()
    assert got.source[0] == "::1" and isinstance(got.message, Request)


def test_close_stops_receiving_and_sending(transports: list[Transport]) -> None:
    a, _ = started(transports, UdpTransport())
    b, inbox = started(transports, UdpTransport())
    b.close()
    b.close()
    a.send(options(1), b.local)
    assert inbox.empty_after(0.05)
    with pytest.raises(TransportError):
        b.send(options(1), a.local)


class Clock:
    def __init__(self, name: str, log: list[tuple[str, float]]) -> None:
        self.name, self.log = name, log

    def on_deadline(self, now: float) -> None:
        self.log.append((self.name, now))


def test_deadline_scheduler_fires_in_order_and_rearm_replaces() -> None:
    scheduler = DeadlineScheduler()
    log: list[tuple[str, float]] = []
    a, b, c = Clock("a", log), Clock("b", log), Clock("c", log)
    start = time.monotonic()
    try:
        scheduler.arm(a, start + 0.06)
        scheduler.arm(b, start + 0.02)
        scheduler.arm(c, start + 0.04)
        scheduler.arm(a, start + 0.01)  # re-arm earlier: fires once, first
        scheduler.arm(c, None)  # disarmed: never fires
        gevent.sleep(0.12)
    finally:
        scheduler.close()
    assert [name for name, _ in log] == ["a", "b"]
    assert all(now >= start + 0.01 for _, now in log)
    assert scheduler.pending() == 0


def test_deadline_scheduler_serves_many_owners_with_one_greenlet() -> None:
    scheduler = DeadlineScheduler()
    log: list[tuple[str, float]] = []
    owners = [Clock(str(i), log) for i in range(2000)]
    now = time.monotonic()
    try:
        for i, owner in enumerate(owners):
            scheduler.arm(owner, now + 0.001 * (i % 20))
        deadline = time.monotonic() + 2.0
        while len(log) < len(owners) and time.monotonic() < deadline:
            gevent.sleep(0.01)
    finally:
        scheduler.close()
    assert len(log) == len(owners)
    assert [now for _, now in log] == sorted(now for _, now in log)


def test_tls_client_that_does_not_listen_names_its_connection_in_sent_by(
    transports: list[Transport], ca: trustme.CA
) -> None:
    server_ctx, client_ctx = tls_pair(ca)
    server, _ = started(transports, TlsTransport(server_context=server_ctx))
    client, _ = started(transports, TlsTransport(client_context=client_ctx))
    assert client.local[1] == 0  # no listener
    sent_by = client.sent_by_for(server.local)
    (conn,) = client.connections.values()
    assert sent_by == f"127.0.0.1:{conn.local[1]}" and conn.local[1] != 0
    assert server.sent_by_for(client.local) == server.sent_by

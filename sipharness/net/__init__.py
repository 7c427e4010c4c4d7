"""gevent transports (UDP, TCP, TLS) that drive the sans-I/O SIP core and its timers."""

from sipharness.net.timers import DeadlineScheduler
from sipharness.net.transport import (
    Connection,
    HostPort,
    Received,
    TcpTransport,
    TlsTransport,
    Transport,
    TransportError,
    UdpTransport,
    local_address_for,
    open_transport,
    resolve,
    tls_client_context,
    tls_server_context,
)

__all__ = [
    "Connection",
    "DeadlineScheduler",
    "HostPort",
    "Received",
    "TcpTransport",
    "TlsTransport",
    "Transport",
    "TransportError",
    "UdpTransport",
    "local_address_for",
    "open_transport",
    "resolve",
    "tls_client_context",
    "tls_server_context",
]

"""gevent transports (UDP, TCP, TLS) that drive the sans-I/O SIP core and its timers."""

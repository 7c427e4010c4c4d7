"""Sans-I/O SIP core: messages, URIs, digest, SDP, transactions and dialogs.

Nothing here touches a socket or a clock: bytes and the current time go in; events,
bytes to send and the next timer deadline come out.
"""

"""RTP media: G.711 audio, RFC 4733 DTMF, RTCP, and per-direction quality statistics.

Sans-I/O modules (no sockets, clocks or gevent; safe in the sippy bridge process):
``rtp``, ``rtcp``, ``g711``, ``dtmf``, ``source``, ``stats``, ``mos``. The gevent part is
``engine``: ``MediaEngine`` drives every session of a process from one greenlet,
``MediaSession`` is one call's RTP bound to the negotiated SDP, ``MediaReport`` is what a
scenario step or load user reads. ``sipp_echo`` runs SIPp's RTP echo as a far end.
"""

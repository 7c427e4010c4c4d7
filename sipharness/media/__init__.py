"""RTP media: G.711 audio, RFC 4733 DTMF, RTCP, and per-direction quality statistics."""

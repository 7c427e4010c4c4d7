"""G.711 µ-law (PCMU) and A-law (PCMA) encoding and decoding of 16-bit linear PCM.

Own tables, built from the ITU-T G.711 segment rules (``audioop`` is gone in Python 3.13).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

_ULAW_BIAS = 0x21  # 14-bit scale; 0x84 in 16-bit linear
_ULAW_CLIP = 8159
_ULAW_DECODE_BIAS = 0x84
_ALAW_SEGMENT_END = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)

#: RTP static payload types and clock rate of the two G.711 laws (RFC 3551 §6).
STATIC_PAYLOAD_TYPE = {"PCMU": 0, "PCMA": 8}
CLOCK_RATE = 8000


def ulaw_encode_sample(sample: int) -> int:
    """One 16-bit signed sample to its µ-law octet (14-bit magnitude, as G.711 quantises)."""
    value = sample >> 2
    if value < 0:
        value, mask = -value, 0x7F
    else:
        mask = 0xFF
    value = min(value, _ULAW_CLIP) + _ULAW_BIAS
    segment = value.bit_length() - 6
    if segment >= 8:
        return 0x7F ^ mask
    return ((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask


def ulaw_decode_sample(octet: int) -> int:
    """One µ-law octet to its 16-bit signed sample."""
    octet = ~octet & 0xFF
    exponent = (octet >> 4) & 0x07
    magnitude = (((octet & 0x0F) << 3) + _ULAW_DECODE_BIAS) << exponent
    magnitude -= _ULAW_DECODE_BIAS
    return -magnitude if octet & 0x80 else magnitude


def alaw_encode_sample(sample: int) -> int:
    """One 16-bit signed sample to its A-law octet (even bits inverted, as sent on the wire)."""
    value = sample >> 3
    if value >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        value = -value - 1
    segment = next((i for i, end in enumerate(_ALAW_SEGMENT_END) if value <= end), 8)
    if segment >= 8:
        return 0x7F ^ mask
    shift = 1 if segment < 2 else segment
    return ((segment << 4) | ((value >> shift) & 0x0F)) ^ mask


def alaw_decode_sample(octet: int) -> int:
    """One A-law octet to its 16-bit signed sample."""
    octet ^= 0x55
    magnitude = (octet & 0x0F) << 4
    segment = (octet & 0x70) >> 4
    if segment == 0:
        magnitude += 8
    else:
        magnitude = (magnitude + 0x108) << (segment - 1)
    return magnitude if octet & 0x80 else -magnitude


@cache
def _encode_table(codec: str) -> bytes:
    encode = ulaw_encode_sample if codec == "PCMU" else alaw_encode_sample
    return bytes(encode(index - 0x10000 if index >= 0x8000 else index) for index in range(0x10000))


@cache
def _decode_table(codec: str) -> tuple[int, ...]:
    decode = ulaw_decode_sample if codec == "PCMU" else alaw_decode_sample
    return tuple(decode(octet) for octet in range(256))


def _checked(codec: str) -> str:
    name = codec.upper()
    if name not in STATIC_PAYLOAD_TYPE:
        raise ValueError(f"unsupported codec {codec!r}: G.711 PCMU or PCMA only")
    return name


def encode(samples: Iterable[int], codec: str) -> bytes:
    """Encode 16-bit signed samples with ``codec`` ("PCMU" or "PCMA"); one octet per sample."""
    table = _encode_table(_checked(codec))
    return bytes(table[sample & 0xFFFF] for sample in samples)


def decode(payload: bytes, codec: str) -> list[int]:
    """Decode G.711 octets with ``codec`` ("PCMU" or "PCMA") to 16-bit signed samples."""
    table = _decode_table(_checked(codec))
    return [table[octet] for octet in payload]

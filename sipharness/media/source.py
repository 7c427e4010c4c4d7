"""Audio sources for RTP: tones, WAV files and silence, as cycles of encoded G.711 frames.

A source is encoded once per (codec, frame size) and the cycle is shared by every session
that plays it, so sending a packet costs no signal processing.
"""

from __future__ import annotations

import math
import random
import wave
from array import array
from functools import cache
from pathlib import Path
from typing import Protocol

from sipharness.media import g711

#: Peak amplitude of a 0 dBm0 sine in 16-bit linear PCM (G.711: +3.17 dBm0 is full scale).
_ZERO_DBM0_PEAK = 32767 * 10 ** (-3.17 / 20)


class AudioSource(Protocol):
    """What a media session plays: a repeating cycle of encoded frames."""

    def frames(self, codec: str, frame_samples: int) -> tuple[bytes, ...]:
        """The cycle of payloads, each ``frame_samples`` octets of ``codec``."""
        ...


def _split(payload: bytes, frame_samples: int, silence: int) -> tuple[bytes, ...]:
    payload += bytes([silence]) * (-len(payload) % frame_samples)
    return tuple(
        payload[start : start + frame_samples] for start in range(0, len(payload), frame_samples)
    )


def _silence_octet(codec: str) -> int:
    return g711.encode([0], codec)[0]


class ToneSource:
    """A sum of sine tones at ``level_dbm0`` (each), repeating every ``cycle_seconds``.

    With ``dither`` the lowest bit of each encoded octet is flipped pseudo-randomly (one
    quantisation step, inaudible), which makes every frame of the cycle distinct: an echo
    that comes back under another SSRC can then still be matched by payload.
    """

    def __init__(
        self,
        frequencies: tuple[float, ...] = (440.0,),
        level_dbm0: float = -10.0,
        cycle_seconds: float = 2.0,
        dither: bool = True,
    ) -> None:
        self.frequencies = tuple(frequencies)
        self.level_dbm0 = level_dbm0
        self.cycle_seconds = cycle_seconds
        self.dither = dither

    def samples(self, clock_rate: int = g711.CLOCK_RATE) -> list[int]:
        """One cycle of 16-bit linear samples."""
        peak = _ZERO_DBM0_PEAK * 10 ** (self.level_dbm0 / 20)
        count = int(self.cycle_seconds * clock_rate)
        steps = [2 * math.pi * f / clock_rate for f in self.frequencies]
        return [
            max(-32768, min(32767, round(peak * sum(math.sin(s * n) for s in steps))))
            for n in range(count)
        ]

    def frames(self, codec: str, frame_samples: int) -> tuple[bytes, ...]:
        return _tone_frames(
            self.frequencies, self.level_dbm0, self.cycle_seconds, self.dither, codec, frame_samples
        )


@cache
def _tone_frames(
    frequencies: tuple[float, ...],
    level_dbm0: float,
    cycle_seconds: float,
    dither: bool,
    codec: str,
    frame_samples: int,
) -> tuple[bytes, ...]:
    source = ToneSource(frequencies, level_dbm0, cycle_seconds, dither=False)
    payload = g711.encode(source.samples(), codec)
    if dither:
        noise = (
            random.Random(0x5EED).getrandbits(len(payload)).to_bytes((len(payload) + 7) // 8, "big")
        )
        payload = bytes(
            octet ^ ((noise[index >> 3] >> (index & 7)) & 1) for index, octet in enumerate(payload)
        )
    return _split(payload, frame_samples, _silence_octet(codec))


class SilenceSource:
    """Digital silence: one frame, repeated."""

    def frames(self, codec: str, frame_samples: int) -> tuple[bytes, ...]:
        return (bytes([_silence_octet(codec)]) * frame_samples,)


class WavSource:
    """A WAV file of 16-bit mono linear PCM at 8 kHz, played in a loop."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with wave.open(str(self.path), "rb") as wav:
            if (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) != (1, 2, 8000):
                raise ValueError(
                    f"{self.path}: need 8 kHz mono 16-bit PCM, got {wav.getframerate()} Hz, "
                    f"{wav.getnchannels()} channel(s), {8 * wav.getsampwidth()}-bit"
                )
            raw = wav.readframes(wav.getnframes())
        if not raw:
            raise ValueError(f"{self.path}: no audio frames")
        pcm = array("h")
        pcm.frombytes(raw)
        if array("h", [1]).tobytes() != b"\x01\x00":
            pcm.byteswap()  # WAV is little-endian
        self._samples = tuple(pcm)

    def frames(self, codec: str, frame_samples: int) -> tuple[bytes, ...]:
        return _split(g711.encode(self._samples, codec), frame_samples, _silence_octet(codec))


def write_wav(path: str | Path, samples: list[int], clock_rate: int = g711.CLOCK_RATE) -> None:
    """Write 16-bit mono linear PCM samples as a WAV file (used to make fixtures/audio)."""
    pcm = array("h", samples)
    if array("h", [1]).tobytes() != b"\x01\x00":
        pcm.byteswap()
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(clock_rate)
        wav.writeframes(pcm.tobytes())

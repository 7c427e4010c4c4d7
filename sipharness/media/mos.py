"""Estimated listening quality (MOS) from loss, jitter and delay: a simplified ITU-T G.107 E-model.

R = R_default - Idd(Ta) - Ie_eff, then MOS from R (G.107 Annex B):

- ``R_default = 93.2``: G.107 §7 with every parameter at its default value (Table 3), so
  noise, loudness and talker echo (TELR 65 dB, i.e. echo cancelled) are left at defaults.
- ``Ta`` (one-way delay, ms) = ``latency_ms`` + ``JITTER_BUFFER_FACTOR`` × ``jitter_ms``: a
  receiver's adaptive jitter buffer holds about twice the RFC 3550 jitter.
- ``Idd`` (G.107 §7.3.3): 0 for Ta ≤ 100 ms, else with X = log2(Ta/100):
  25·((1+X⁶)^(1/6) − 3·(1+(X/3)⁶)^(1/6) + 2).
- ``Ie_eff = Ie + (95 − Ie)·Ppl/(Ppl/BurstR + Bpl)`` (G.107 §7.4) with random loss
  (BurstR = 1) and, for G.711, Ie = 0 and Bpl = 25.1 with packet loss concealment or 4.3
  without (G.113 Appendix I, Table I.3).
- MOS = 1 + 0.035·R + R·(R−60)·(100−R)·7·10⁻⁶ for 0 < R < 100; 1 below, 4.5 above.

Perfect G.711 gives R = 93.2 and MOS ≈ 4.41.
"""

from __future__ import annotations

import math

R_DEFAULT = 93.2
JITTER_BUFFER_FACTOR = 2.0
#: (Ie, Bpl with PLC, Bpl without PLC) per codec, from G.113 Appendix I.
_CODEC_IMPAIRMENT = {"PCMU": (0.0, 25.1, 4.3), "PCMA": (0.0, 25.1, 4.3)}


def delay_impairment(one_way_ms: float) -> float:
    """G.107 Idd: the impairment of an absolute one-way delay in milliseconds."""
    if one_way_ms <= 100.0:
        return 0.0
    x = math.log2(one_way_ms / 100.0)
    return 25.0 * ((1 + x**6) ** (1 / 6) - 3 * (1 + (x / 3) ** 6) ** (1 / 6) + 2)


def effective_equipment_impairment(loss: float, codec: str = "PCMU", plc: bool = True) -> float:
    """G.107 Ie_eff for a random packet loss ratio ``loss`` (0..1)."""
    try:
        ie, bpl_plc, bpl_plain = _CODEC_IMPAIRMENT[codec.upper()]
    except KeyError:
        raise ValueError(f"no E-model values for codec {codec!r}") from None
    ppl = 100.0 * min(max(loss, 0.0), 1.0)
    bpl = bpl_plc if plc else bpl_plain
    return ie + (95.0 - ie) * ppl / (ppl + bpl)


def r_factor(
    loss: float, jitter_ms: float, latency_ms: float, codec: str = "PCMU", plc: bool = True
) -> float:
    """The E-model rating R for a loss ratio, jitter and one-way network delay."""
    one_way = max(latency_ms, 0.0) + JITTER_BUFFER_FACTOR * max(jitter_ms, 0.0)
    return R_DEFAULT - delay_impairment(one_way) - effective_equipment_impairment(loss, codec, plc)


def mos_from_r(r: float) -> float:
    """G.107 Annex B: R to the estimated mean opinion score (1.0..4.5)."""
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return max(1.0, 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6)


def mos_from(
    loss: float, jitter_ms: float, latency_ms: float, codec: str = "PCMU", plc: bool = True
) -> float:
    """Estimated MOS for a loss ratio (0..1), jitter (ms) and one-way delay (ms)."""
    return mos_from_r(r_factor(loss, jitter_ms, latency_ms, codec, plc))

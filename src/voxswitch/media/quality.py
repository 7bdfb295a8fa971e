"""Call quality as a MOS estimate: the ITU-T G.107 E-model, reduced as VoIP monitors reduce it.

Theory of operation
-------------------
The E-model rates a connection with R = Ro - Is - Id - Ie,eff + A (G.107 §3). With every
parameter at its G.107 default, Ro - Is = 93.2 and A = 0, leaving the two terms a network changes:

* Id, delay impairment, from the one-way mouth-to-ear delay d in ms. We use the fit of Cole and
  Rosenbluth ("Voice over IP performance monitoring", ACM CCR 31(2), 2001), which reproduces the
  G.107 curve for echo-free connections: Id = 0.024 d + 0.11 (d - 177.3) H(d - 177.3).
* Ie,eff, equipment impairment under packet loss (G.107 eq. 7-29, BurstR = 1 for random loss):
  Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl + Bpl), Ppl in percent.

The codec's Ie and Bpl come from ITU-T G.113 Appendix I (Tables I.1 and I.3): G.711 has Ie = 0,
Bpl = 4.3 without packet-loss concealment and 25.1 with it (G.711 Appendix I PLC).

The one-way delay is estimated from what RTCP gives us: half the round-trip time, plus a jitter
buffer of twice the interarrival jitter, plus the codec's packetisation and look-ahead.
R maps to MOS by G.107 Annex B: MOS = 1 + 0.035 R + 7e-6 R (R - 60) (100 - R), 1 below R = 0 and
4.5 above R = 100. Without any impairment, R = 93.2 gives MOS 4.41, the best a narrowband call rates.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "G711",
    "G711_PLC",
    "R_DEFAULT",
    "Codec",
    "delay_impairment",
    "effective_equipment_impairment",
    "estimate_mos",
    "mos_from_r",
    "r_factor",
]

R_DEFAULT = 93.2  # Ro - Is with G.107 default parameters


@dataclass(frozen=True, slots=True)
class Codec:
    """E-model figures of a codec: equipment impairment Ie, loss robustness Bpl, delay it adds."""

    name: str
    ie: float
    bpl: float
    frame_ms: float = 20.0  # packetisation
    lookahead_ms: float = 0.0


G711 = Codec("G.711", ie=0.0, bpl=4.3)  # G.113 Table I.3, no PLC
G711_PLC = Codec("G.711 with PLC", ie=0.0, bpl=25.1)  # G.113 Table I.3, G.711 Appendix I PLC


def delay_impairment(one_way_ms: float) -> float:
    """Id for a one-way delay in ms (Cole and Rosenbluth's fit of G.107)."""
    d = max(one_way_ms, 0.0)
    return 0.024 * d + (0.11 * (d - 177.3) if d > 177.3 else 0.0)


def effective_equipment_impairment(loss: float, codec: Codec) -> float:
    """Ie,eff for a packet-loss fraction `loss` (0-1), random loss (G.107 eq. 7-29, BurstR = 1)."""
    ppl = min(max(loss, 0.0), 1.0) * 100.0
    return codec.ie + (95.0 - codec.ie) * ppl / (ppl + codec.bpl)


def r_factor(loss: float, one_way_ms: float, codec: Codec = G711) -> float:
    """The transmission rating R for a loss fraction and a one-way delay in ms."""
    return R_DEFAULT - delay_impairment(one_way_ms) - effective_equipment_impairment(loss, codec)


def mos_from_r(r: float) -> float:
    """G.107 Annex B: R to estimated mean opinion score (conversational quality), 1.0-4.5."""
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    # The cubic dips just below 1 for R < 6.5; the scale starts at 1.
    return max(1.0, 1.0 + 0.035 * r + 7e-6 * r * (r - 60.0) * (100.0 - r))


def estimate_mos(loss: float, jitter_ms: float, rtt_ms: float, codec: Codec = G711) -> float:
    """MOS from what RTCP reports: loss fraction (0-1), interarrival jitter and round-trip time in ms.

    One-way delay = rtt / 2 + 2 * jitter (the jitter buffer) + codec frame and look-ahead.
    """
    one_way = max(rtt_ms, 0.0) / 2 + 2 * max(jitter_ms, 0.0) + codec.frame_ms + codec.lookahead_ms
    return mos_from_r(r_factor(loss, one_way, codec))

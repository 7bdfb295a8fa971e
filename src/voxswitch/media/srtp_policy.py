"""What ``VOXSWITCH_SRTP`` means for one offer or answer: pure functions the legs call.

The modes
---------
``off``
    We offer RTP/AVP without keys. An incoming offer is answered on a plain stream; one that has
    only RTP/SAVP audio is refused (488).
``offer``
    We offer RTP/SAVP with our SDES lines (RFC 4568 §5.1.1). An answerer that refuses it answers
    488 or 606 (RFC 3264 §6, RFC 4568 §7.1.2); the call is then placed again with a plain RTP/AVP
    offer only when ``VOXSWITCH_SRTP_FALLBACK`` is true (:func:`may_fall_back`), else it fails.
    An incoming offer is answered as it comes: RTP/SAVP with our key when one of its lines is
    one we can honour, plain RTP/AVP otherwise (whichever stream comes first, RFC 3264 §6).
``require``
    As ``offer`` when calling, never falling back. An incoming offer without an RTP/SAVP audio
    stream whose keys we can honour is refused (488), and its RTP/AVP streams are never chosen.

RFC 4568 offers are RTP/SAVP, and an answer cannot change an m= line's profile, so a plain
answerer can only refuse the stream or the call: that is why falling back means a new offer.
(Best-effort "RTP/AVP with a=crypto" offers, which some phones send, are answered plainly.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from voxswitch.media.srtp import DEFAULT_SUITES, SUITES, SrtpError, local_crypto, make_crypto, parse_key
from voxswitch.sip import sdp

__all__ = ["AnswerPlan", "SrtpMode", "may_fall_back", "offer_crypto", "plan_answer"]

# Final responses by which an answerer says it will not take the media we offered.
_REFUSED_MEDIA = frozenset({488, 606})


class SrtpMode(StrEnum):
    OFF = "off"
    OFFER = "offer"
    REQUIRE = "require"


@dataclass(frozen=True)
class AnswerPlan:
    """How to answer one offer: put ``crypto`` and ``require_crypto`` in our ``sdp.LocalMedia``,
    or, when ``refusal`` is set, answer 488 Not Acceptable Here with it as the reason."""

    crypto: tuple[sdp.Crypto, ...] = ()
    require_crypto: bool = False
    refusal: str | None = None


def _suites(suites: Sequence[str]) -> tuple[str, ...]:
    chosen = tuple(suites) or DEFAULT_SUITES
    unknown = [s for s in chosen if s not in SUITES]
    if unknown:
        raise ValueError(f"unsupported SRTP suites {unknown}; supported: {', '.join(SUITES)}")
    return chosen


def offer_crypto(mode: SrtpMode | str, suites: Sequence[str] = ()) -> tuple[sdp.Crypto, ...]:
    """Our ``LocalMedia.crypto`` for an offer: fresh keys, or none when SRTP is off."""
    if SrtpMode(mode) is SrtpMode.OFF:
        return ()
    return local_crypto(_suites(suites))


def may_fall_back(mode: SrtpMode | str, fallback: bool, status: int) -> bool:
    """Whether to offer again without SRTP after our RTP/SAVP offer got final response ``status``."""
    return SrtpMode(mode) is SrtpMode.OFFER and fallback and status in _REFUSED_MEDIA


def _audio(offer: sdp.SessionDescription) -> list[sdp.Media]:
    """The streams ``sdp.answer`` may pick, in its order."""
    return [m for m in offer.media if m.media == "audio" and m.port != 0 and m.proto in ("RTP/AVP", "RTP/SAVP")]


def _honourable_suite(streams: list[sdp.Media], ours: tuple[str, ...]) -> tuple[str | None, list[str]]:
    """The one suite to answer with so that ``sdp.answer``'s choice (the first offered line whose
    suite we hold, stream by stream) lands on a line we can honour; and why others were refused."""
    reasons: list[str] = []
    seen: set[str] = set()  # suites that an earlier, refused line would claim first
    for m in streams:
        for line in m.crypto:
            if line.suite not in ours or line.suite in seen:
                if line.suite not in ours:
                    reasons.append(f"tag {line.tag}: {line.suite} is not one we use")
                continue
            try:
                parse_key(line)
            except SrtpError as exc:
                reasons.append(f"tag {line.tag}: {exc}")
                seen.add(line.suite)
                continue
            return line.suite, reasons
        # a stream none of whose lines we take is skipped by sdp.answer; later ones still count
    return None, reasons


def plan_answer(
    mode: SrtpMode | str,
    offer: sdp.SessionDescription,
    suites: Sequence[str] = (),
    *,
    keep: sdp.Crypto | None = None,
) -> AnswerPlan:
    """Turn the setting and an incoming offer into our ``LocalMedia.crypto`` and a verdict.

    ``keep`` is our line from the session's last offer/answer: answering a re-INVITE with it when
    the suite stays lets the leg keep its SRTP context (RFC 4568 §7.1.4); else a fresh key is made.
    """
    mode = SrtpMode(mode)
    streams = _audio(offer)
    plain = any(m.proto == "RTP/AVP" for m in streams)
    secure = [m for m in streams if m.proto == "RTP/SAVP"]
    if mode is SrtpMode.OFF:
        if secure and not plain:
            return AnswerPlan(refusal="SRTP is off here and the offer has only RTP/SAVP audio")
        return AnswerPlan()
    suite, reasons = _honourable_suite(secure, _suites(suites)) if secure else (None, [])
    require = mode is SrtpMode.REQUIRE
    if suite is None:
        if require or not plain:
            if not secure:
                why = "SRTP is required here and the offer is plain RTP/AVP"
            else:
                why = "no crypto line in the offer that we can honour: " + "; ".join(reasons or ["none offered"])
            return AnswerPlan(require_crypto=require, refusal=why)
        return AnswerPlan()  # offer mode: answer the plain stream
    # sdp.answer gives our line the offer's tag (RFC 4568 §7.1.2); 1 is a placeholder.
    ours = keep if keep is not None and keep.suite == suite else make_crypto(suite, 1)
    return AnswerPlan(crypto=(ours,), require_crypto=require)

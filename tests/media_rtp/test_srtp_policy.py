"""VOXSWITCH_SRTP: what we offer, how an incoming offer is answered or refused, when to fall back."""

from __future__ import annotations

import base64

import pydantic
import pytest

from voxswitch.config import SRTP_SUITES, load_settings
from voxswitch.media.srtp import SUITES, context_for, make_crypto
from voxswitch.media.srtp_policy import AnswerPlan, SrtpMode, may_fall_back, offer_crypto, plan_answer
from voxswitch.sip import sdp

KEY30 = base64.b64encode(bytes(range(30))).decode()


def offer(*streams: tuple[str, list[str]]) -> sdp.SessionDescription:
    """An offer with one audio m= line per (proto, crypto lines) and PCMU on each."""
    lines = ["v=0", "o=phone 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0"]
    for i, (proto, crypto) in enumerate(streams):
        lines += [f"m=audio {40000 + 2 * i} {proto} 0", "a=rtpmap:0 PCMU/8000"]
        lines += [f"a=crypto:{c}" for c in crypto]
    return sdp.parse("\r\n".join(lines) + "\r\n")


def answered(plan: AnswerPlan, incoming: sdp.SessionDescription) -> sdp.Negotiated:
    assert plan.refusal is None, plan.refusal
    local = sdp.LocalMedia("127.0.0.1", 50000, (sdp.PCMU,), crypto=plan.crypto, require_crypto=plan.require_crypto)
    _, negotiated = sdp.answer(incoming, local, session_id=1)
    assert negotiated is not None
    return negotiated


GOOD_80 = f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}"
GOOD_32 = f"2 AES_CM_128_HMAC_SHA1_32 inline:{KEY30}"
KDR_80 = f"3 AES_CM_128_HMAC_SHA1_80 inline:{KEY30} KDR=5"
AES256 = "4 AES_256_CM_HMAC_SHA1_80 inline:" + base64.b64encode(bytes(46)).decode()


def test_what_we_offer() -> None:
    assert offer_crypto("off") == ()
    lines = offer_crypto(SrtpMode.OFFER)
    assert lines[0].suite == "AES_CM_128_HMAC_SHA1_80" and len(lines) == 4
    assert [c.suite for c in offer_crypto("require", ["AEAD_AES_256_GCM"])] == ["AEAD_AES_256_GCM"]
    built = sdp.build_offer(sdp.LocalMedia("127.0.0.1", 4000, (sdp.PCMU,), crypto=lines), session_id=1)
    assert built.media[0].proto == "RTP/SAVP"  # RFC 4568 offers are RTP/SAVP
    with pytest.raises(ValueError, match="F8_128_HMAC_SHA1_80"):
        offer_crypto("offer", ["F8_128_HMAC_SHA1_80"])
    with pytest.raises(ValueError):
        offer_crypto("sometimes")


def test_falling_back_to_plain_is_only_for_offer_mode_when_configured() -> None:
    assert may_fall_back("offer", True, 488) and may_fall_back("offer", True, 606)
    assert not may_fall_back("offer", False, 488)
    assert not may_fall_back("require", True, 488)
    assert not may_fall_back("offer", True, 486)  # busy is not a refusal of the media


def test_off_answers_plain_and_refuses_srtp_only_offers() -> None:
    assert plan_answer("off", offer(("RTP/AVP", []))) == AnswerPlan()
    refused = plan_answer("off", offer(("RTP/SAVP", [GOOD_80])))
    assert refused.refusal is not None and "off" in refused.refusal
    both = offer(("RTP/SAVP", [GOOD_80]), ("RTP/AVP", []))
    neg = answered(plan_answer("off", both), both)
    assert neg.media_index == 1 and neg.remote_crypto is None


def test_offer_mode_answers_an_offer_as_it_comes() -> None:
    plain = offer(("RTP/AVP", []))
    assert answered(plan_answer("offer", plain), plain).remote_crypto is None
    secure = offer(("RTP/SAVP", [GOOD_80, GOOD_32]))
    plan = plan_answer("offer", secure)
    assert [c.suite for c in plan.crypto] == ["AES_CM_128_HMAC_SHA1_80"] and not plan.require_crypto
    neg = answered(plan, secure)
    assert neg.remote_crypto is not None and neg.remote_crypto.tag == 1
    assert neg.local_crypto is not None and neg.local_crypto.tag == 1  # RFC 4568 §7.1.2: the offer's tag
    assert context_for(neg) is not None
    # "RTP/AVP with a=crypto" (best-effort SRTP, as some phones offer it) is answered plainly
    best_effort = offer(("RTP/AVP", [GOOD_80]))
    assert answered(plan_answer("offer", best_effort), best_effort).remote_crypto is None


def test_a_line_we_cannot_honour_is_passed_over_for_one_we_can() -> None:
    incoming = offer(("RTP/SAVP", [AES256, KDR_80, GOOD_32, GOOD_80]))
    plan = plan_answer("offer", incoming)
    # the KDR line is the first AES_CM_128_80 one, so answering with that suite would pick it
    assert [c.suite for c in plan.crypto] == ["AES_CM_128_HMAC_SHA1_32"]
    neg = answered(plan, incoming)
    assert neg.remote_crypto is not None and neg.remote_crypto.tag == 2
    nothing = plan_answer("offer", offer(("RTP/SAVP", [AES256, KDR_80])))
    assert nothing.refusal is not None
    assert "AES_256_CM_HMAC_SHA1_80 is not one we use" in nothing.refusal and "KDR=5" in nothing.refusal
    with_plain = offer(("RTP/SAVP", [KDR_80]), ("RTP/AVP", []))
    assert answered(plan_answer("offer", with_plain), with_plain).media_index == 1  # plain is fine here


def test_require_refuses_plain_and_never_picks_a_plain_stream() -> None:
    refused = plan_answer("require", offer(("RTP/AVP", [])))
    assert refused.refusal == "SRTP is required here and the offer is plain RTP/AVP"
    refused = plan_answer("require", offer(("RTP/SAVP", [KDR_80]), ("RTP/AVP", [])))
    assert refused.refusal is not None and "KDR=5" in refused.refusal
    both = offer(("RTP/AVP", []), ("RTP/SAVP", [GOOD_80]))
    plan = plan_answer("require", both)
    assert plan.require_crypto
    neg = answered(plan, both)
    assert neg.media_index == 1 and neg.remote_crypto is not None
    gcm = offer(("RTP/SAVP", [f"7 AEAD_AES_256_GCM inline:{base64.b64encode(bytes(44)).decode()}"]))
    assert plan_answer("require", gcm, ["AES_CM_128_HMAC_SHA1_80"]).refusal is not None
    assert [c.suite for c in plan_answer("require", gcm).crypto] == ["AEAD_AES_256_GCM"]


def test_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(SRTP_SUITES) == set(SUITES)  # config names what srtp.py implements
    assert load_settings().srtp == "off" and load_settings().srtp_fallback is False
    monkeypatch.setenv("VOXSWITCH_SRTP", "Require")
    monkeypatch.setenv("VOXSWITCH_SRTP_FALLBACK", "true")
    monkeypatch.setenv("VOXSWITCH_SRTP_SUITES", '["AEAD_AES_128_GCM"]')
    s = load_settings()
    assert (s.srtp, s.srtp_fallback, s.srtp_suites) == ("require", True, ["AEAD_AES_128_GCM"])
    assert [c.suite for c in offer_crypto(s.srtp, s.srtp_suites)] == ["AEAD_AES_128_GCM"]
    monkeypatch.setenv("VOXSWITCH_SRTP", "sometimes")
    with pytest.raises(pydantic.ValidationError):
        load_settings()
    monkeypatch.setenv("VOXSWITCH_SRTP", "offer")
    monkeypatch.setenv("VOXSWITCH_SRTP_SUITES", '["AES_256_CM_HMAC_SHA1_80"]')
    with pytest.raises(pydantic.ValidationError):
        load_settings()


def test_our_key_for_the_answer_is_fresh_each_time() -> None:
    incoming = offer(("RTP/SAVP", [GOOD_80]))
    a, b = plan_answer("offer", incoming).crypto[0], plan_answer("offer", incoming).crypto[0]
    assert a.key_params != b.key_params and a.suite == b.suite == make_crypto(a.suite, 1).suite


def test_a_reinvite_answer_keeps_our_key_and_so_the_context() -> None:
    incoming = offer(("RTP/SAVP", [GOOD_80]))
    first = answered(plan_answer("offer", incoming), incoming)
    context = context_for(first)
    again = answered(plan_answer("offer", incoming, keep=first.local_crypto), incoming)
    assert again.local_crypto == first.local_crypto and context_for(again, context) is context
    other_suite = offer(("RTP/SAVP", [GOOD_32]))
    plan = plan_answer("offer", other_suite, keep=first.local_crypto)
    assert plan.crypto[0].suite == "AES_CM_128_HMAC_SHA1_32"  # a new suite needs a new key

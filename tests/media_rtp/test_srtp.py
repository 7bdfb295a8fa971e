"""SDES keys and the SRTP context: RFC 4568 lines, RFC 3711 Appendix B vectors, protect/unprotect.

libsrtp does not show the session keys it derives, so Appendix B is checked in two steps: a
reference AES-CM and key derivation written here from RFC 3711 §4.1.1 and §4.3 (with the
`cryptography` package's AES) must reproduce B.2's keystream and B.3's session keys; then a packet
our context protects under B.3's master key must be byte for byte what the reference builds from
B.3's session keys. That only holds if libsrtp derived exactly those keys from our key ‖ salt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from pathlib import Path

import pylibsrtp
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from voxswitch.media.rtp import RtpSender, build_rtp, parse_rtp
from voxswitch.media.srtp import (
    DEFAULT_SUITES,
    SUITES,
    SrtpContext,
    SrtpError,
    context_for,
    local_crypto,
    make_crypto,
    parse_key,
)
from voxswitch.sip import sdp

SDP_DATA = Path(__file__).parents[1] / "sdp" / "data"
# RFC 4568 §4 (and §9.1's grammar): lifetime 2^20 packets, MKI 1 in 32 bytes.
RFC4568_EXAMPLE = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32"

# RFC 3711 Appendix B.2 (AES-CM keystream) and B.3 (key derivation).
B2_KEY = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
B2_SALT = bytes.fromhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD")
B2_KEYSTREAM = {
    0x0000: "E03EAD0935C95E80E166B16DD92B4EB4",
    0x0001: "D23513162B02D0F72A43A2FE4A5F97AB",
    0x0002: "41E95B3BB0A2E8DD477901E4FCA894C0",
    0xFEFF: "EC8CDF7398607CB0F2D21675EA9EA1E4",
    0xFF00: "362B7C3C6773516318A077D7FC5073AE",
    0xFF01: "6A2CC3787889374FBEB4C81B17BA6C44",
}
B3_MASTER_KEY = bytes.fromhex("E1F97A0D3E018BE0D64FA32C06DE4139")
B3_MASTER_SALT = bytes.fromhex("0EC675AD498AFEEBB6960B3AABE6")
B3_CIPHER_KEY = bytes.fromhex("C61E7A93744F39EE10734AFE3FF7A087")
B3_CIPHER_SALT = bytes.fromhex("30CBBC08863D8C85D49DB34A9AE1")
B3_AUTH_KEY = bytes.fromhex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")


def crypto_line(suite: str, master: bytes, tag: int = 1, tail: str = "", params: str = "") -> sdp.Crypto:
    key = base64.b64encode(master).decode()
    return sdp.Crypto.parse(f"{tag} {suite} inline:{key}{tail}{(' ' + params) if params else ''}")


SUITE_80 = "AES_CM_128_HMAC_SHA1_80"


def pair(suite: str = "AES_CM_128_HMAC_SHA1_80") -> tuple[SrtpContext, SrtpContext]:
    """Two ends of one SRTP call: each protects with its own key and unprotects with the other's."""
    a, b = make_crypto(suite, 1), make_crypto(suite, 1)
    return SrtpContext(a, b), SrtpContext(b, a)


def rtp_packets(n: int, ssrc_sender: RtpSender | None = None) -> list[bytes]:
    sender = ssrc_sender or RtpSender(0)
    return [sender.audio(bytes([i & 0xFF]) * 160, 160) for i in range(n)]


# ------------------------------------------------------------------------- our keys and the peer's


def test_our_lines_are_fresh_inline_keys_of_the_suites_length() -> None:
    lines = local_crypto()
    assert [c.suite for c in lines] == list(DEFAULT_SUITES) and [c.tag for c in lines] == [1, 2, 3, 4]
    for line in lines:
        again = sdp.Crypto.parse(str(line))  # what the peer reads from our SDP
        assert again == line and len(again.key_params) == 1
        assert again.key_params[0].method == "inline" and again.key_params[0].lifetime is None
        raw = base64.b64decode(again.key_params[0].key, validate=True)
        assert len(raw) == SUITES[line.suite].master_length  # 30 for AES_CM_128 (RFC 4568 §6.2.1)
        assert parse_key(again).master == raw
    assert len({c.key_params[0].key for c in local_crypto() + local_crypto()}) == 8  # never reused
    assert len(base64.b64decode(make_crypto("AES_CM_128_HMAC_SHA1_32", 7).key_params[0].key)) == 30
    with pytest.raises(SrtpError, match="AES_256_CM_HMAC_SHA1_80"):
        make_crypto("AES_256_CM_HMAC_SHA1_80", 1)


def test_rfc4568_example_line() -> None:
    crypto = sdp.Attribute.parse(f"crypto:{RFC4568_EXAMPLE}")
    line = sdp.Crypto.parse(crypto.value or "")
    key = parse_key(line)
    assert key.suite.name == "AES_CM_128_HMAC_SHA1_80"
    assert key.master == base64.b64decode("PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR") and len(key.master) == 30
    assert key.lifetime == 2**20
    assert key.mki == (1).to_bytes(32, "big")
    assert key.window is None
    # RFC 4568's SDP example (tests/sdp/data): MKI 1 in 4 bytes and a session parameter
    (example,) = sdp.parse((SDP_DATA / "rfc4568-srtp.sdp").read_bytes()).media[0].crypto
    key = parse_key(example)
    assert key.lifetime == 2**20 and key.mki == b"\x00\x00\x00\x01" and len(key.master) == 30


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("1 AES_256_CM_HMAC_SHA1_80 inline:" + "A" * 62 + "==", "not supported"),
        ("1 F8_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR", "not supported"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtx", "needs 30 bytes"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:PS1u!CVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR", "not base64"),
        (
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4;"
            "inline:QUJjZGVmMTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5|2^20|2:4",
            "2 master keys",
        ),
        ("1 AES_CM_128_HMAC_SHA1_80 uri:https://keys.example/k1", "only inline"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR KDR=23", "key derivation"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR UNENCRYPTED_SRTP", "always"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR UNAUTHENTICATED_SRTP", "always"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR FEC_KEY=inline:x", "session"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^x", "lifetime"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|0", "lifetime 0"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|256:1", "does not fit"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|1:129", "does not fit"),
        ("1 AEAD_AES_128_GCM inline:" + base64.b64encode(bytes(28)).decode() + "|1:4", "AEAD"),
    ],
)
def test_lines_we_cannot_honour_are_refused_with_the_reason(line: str, why: str) -> None:
    with pytest.raises(SrtpError, match=why):
        parse_key(sdp.Crypto.parse(line))


def test_session_parameters_we_can_honour() -> None:
    base = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
    assert parse_key(sdp.Crypto.parse(f"{base} WSH=256 KDR=0 FEC_ORDER=FEC_SRTP")).window == 256
    assert parse_key(sdp.Crypto.parse(f"{base} WSH=10")).window == 64  # §6.3.6: at least 64
    assert parse_key(sdp.Crypto.parse(f"{base}|2^48")).lifetime is None  # the suite's own maximum
    assert parse_key(sdp.Crypto.parse(f"{base}|1048576")).lifetime == 2**20  # decimal form
    unpadded = base64.b64encode(bytes(range(28))).decode().rstrip("=")
    assert parse_key(sdp.Crypto.parse(f"1 AEAD_AES_128_GCM inline:{unpadded}")).master == bytes(range(28))


# -------------------------------------------------------------------- RFC 3711 Appendix B vectors


def aes_cm_keystream(key: bytes, iv: int, length: int) -> bytes:
    """RFC 3711 §4.1.1: AES of IV, IV+1, ... (the 128-bit counter)."""
    enc = Cipher(algorithms.AES(key), modes.CTR(iv.to_bytes(16, "big"))).encryptor()
    return enc.update(bytes(length)) + enc.finalize()


def derive(master_key: bytes, master_salt: bytes, label: int, length: int) -> bytes:
    """RFC 3711 §4.3.1 with key_derivation_rate 0: x = (label * 2^48) XOR master_salt, IV = x * 2^16."""
    x = int.from_bytes(master_salt, "big") ^ (label << 48)
    return aes_cm_keystream(master_key, x << 16, length)


def reference_srtp(
    packet: bytes, cipher_key: bytes, cipher_salt: bytes, auth_key: bytes, roc: int = 0, tag: int = 10
) -> bytes:
    """RFC 3711 §3.1, §4.1.1, §4.2: AES-CM payload, HMAC-SHA1 over header ‖ payload ‖ ROC."""
    p = parse_rtp(packet)
    header = packet[: len(packet) - len(p.payload)]
    index = (roc << 16) | p.sequence
    iv = (int.from_bytes(cipher_salt, "big") << 16) ^ (p.ssrc << 64) ^ (index << 16)
    stream = aes_cm_keystream(cipher_key, iv, len(p.payload))
    body = header + bytes(x ^ y for x, y in zip(p.payload, stream, strict=True))
    mac = hmac.new(auth_key, body + struct.pack("!I", roc), hashlib.sha1).digest()[:tag]
    return body + mac


def test_reference_matches_rfc3711_b2_keystream_and_b3_session_keys() -> None:
    iv = int.from_bytes(B2_SALT, "big") << 16
    stream = aes_cm_keystream(B2_KEY, iv, 16 * 0x10000)
    for block, expected in B2_KEYSTREAM.items():
        assert stream[16 * block : 16 * block + 16] == bytes.fromhex(expected)
    assert derive(B3_MASTER_KEY, B3_MASTER_SALT, 0x00, 16) == B3_CIPHER_KEY
    assert derive(B3_MASTER_KEY, B3_MASTER_SALT, 0x01, 20) == B3_AUTH_KEY
    assert derive(B3_MASTER_KEY, B3_MASTER_SALT, 0x02, 14) == B3_CIPHER_SALT


def test_libsrtp_under_our_context_derives_the_rfc3711_b3_session_keys() -> None:
    master = B3_MASTER_KEY + B3_MASTER_SALT  # RFC 4568 §6.1: the inline key is key ‖ salt
    ours = crypto_line("AES_CM_128_HMAC_SHA1_80", master)
    sender = SrtpContext(ours, make_crypto("AES_CM_128_HMAC_SHA1_80", 1))
    receiver = SrtpContext(make_crypto("AES_CM_128_HMAC_SHA1_80", 1), ours)
    source = RtpSender(0)
    for packet in rtp_packets(3, source):
        expected = reference_srtp(packet, B3_CIPHER_KEY, B3_CIPHER_SALT, B3_AUTH_KEY)
        assert sender.protect_rtp(packet) == expected
        assert receiver.unprotect_rtp(expected) == packet
    short = crypto_line("AES_CM_128_HMAC_SHA1_32", master)
    packet = rtp_packets(1)[0]
    assert SrtpContext(short, short).protect_rtp(packet) == reference_srtp(
        packet, B3_CIPHER_KEY, B3_CIPHER_SALT, B3_AUTH_KEY, tag=4
    )


# ---------------------------------------------------------------------------- protect / unprotect


@pytest.mark.parametrize("suite", list(SUITES))
def test_round_trip_rtp_and_rtcp_for_every_suite(suite: str) -> None:
    alice, bob = pair(suite)
    for packet in rtp_packets(20):
        wire = alice.protect_rtp(packet)
        assert wire is not None and wire != packet and wire[:12] == packet[:12]  # header stays clear
        assert len(wire) == len(packet) + SUITES[suite].rtp_tag
        assert bob.unprotect_rtp(wire) == packet
    rtcp = bytes.fromhex("81c90007") + struct.pack("!I", 0x1234) + bytes(24)  # an RR with one block
    wire = bob.protect_rtcp(rtcp)
    assert wire is not None and alice.unprotect_rtcp(wire) == rtcp
    assert alice.stats.protected == 20 and bob.stats.unprotected == 20 and alice.stats.unprotected == 1


def test_tampered_replayed_and_foreign_packets_are_dropped_and_counted() -> None:
    alice, bob = pair()
    first, second = (alice.protect_rtp(p) for p in rtp_packets(2))
    assert first is not None and second is not None
    tampered = bytearray(first)
    tampered[20] ^= 0x01  # one payload bit
    assert bob.unprotect_rtp(bytes(tampered)) is None and bob.stats.auth_failures == 1
    header_flip = bytearray(first)
    header_flip[1] ^= 0x08  # the payload type, which is authenticated though not encrypted
    assert bob.unprotect_rtp(bytes(header_flip)) is None and bob.stats.auth_failures == 2
    assert bob.unprotect_rtp(first) is not None  # the genuine one still passes after the forgeries
    assert bob.unprotect_rtp(first) is None and bob.stats.replays == 1  # RFC 3711 §3.3.2
    assert bob.unprotect_rtp(second) is not None
    stranger = SrtpContext(make_crypto("AES_CM_128_HMAC_SHA1_80", 1), make_crypto("AES_CM_128_HMAC_SHA1_80", 1))
    foreign = stranger.protect_rtp(rtp_packets(1)[0])
    assert foreign is not None and bob.unprotect_rtp(foreign) is None and bob.stats.auth_failures == 3
    plain = rtp_packets(1)[0]
    assert bob.unprotect_rtp(plain) is None  # plain RTP on an SRTP leg is refused too
    assert bob.unprotect_rtp(b"\x80\x00") is None and bob.stats.errors == 1
    assert bob.unprotect_rtcp(bytes.fromhex("81c90001") + bytes(4)) is None
    assert bob.stats.unprotected == 2
    assert set(bob.stats.as_dict()) >= {"auth_failures", "replays", "expired", "errors"}


def test_the_sender_refuses_to_reuse_an_index() -> None:
    """A relay that forwards a duplicate must not encrypt two payloads under one keystream."""
    alice, _ = pair()
    packet = rtp_packets(1)[0]
    assert alice.protect_rtp(packet) is not None
    again = build_rtp(parse_rtp(packet))
    assert alice.protect_rtp(again) is None and alice.stats.send_failures == 1


def peer_sessions(master: bytes) -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
    """A peer's sending side in bare libsrtp (RTP, RTCP), for keys our own lines never carry."""
    policy = pylibsrtp.Policy(key=master, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    return pylibsrtp.Session(policy), pylibsrtp.Session(policy)


def test_a_peer_key_with_mki_and_lifetime_is_honoured() -> None:
    line = sdp.Crypto.parse(RFC4568_EXAMPLE)
    master = base64.b64decode(line.key_params[0].key)
    mki = (1).to_bytes(32, "big")
    rtp_tx, rtcp_tx = peer_sessions(master)  # the MKI goes in before the tag (RFC 3711 §3.1)
    us = SrtpContext(make_crypto("AES_CM_128_HMAC_SHA1_80", 1), line)
    packets = rtp_packets(3)
    for packet in packets[:2]:
        wire = rtp_tx.protect(packet)
        assert us.unprotect_rtp(wire[:-10] + mki + wire[-10:]) == packet
    wire = rtp_tx.protect(packets[2])
    assert us.unprotect_rtp(wire[:-10] + (2).to_bytes(32, "big") + wire[-10:]) is None  # another MKI
    assert us.unprotect_rtp(wire) is None and us.stats.errors == 2  # no MKI at all
    rtcp = bytes.fromhex("80c90001") + struct.pack("!I", 0x42)
    wire = rtcp_tx.protect_rtcp(rtcp)
    assert us.unprotect_rtcp(wire[:-10] + mki + wire[-10:]) == rtcp


def test_the_peer_key_expires_after_its_lifetime() -> None:
    theirs = crypto_line("AES_CM_128_HMAC_SHA1_80", bytes(range(30)), tail="|4")
    us = SrtpContext(make_crypto("AES_CM_128_HMAC_SHA1_80", 1), theirs)
    peer, _ = peer_sessions(bytes(range(30)))
    wire = [peer.protect(p) for p in rtp_packets(5)]
    assert [us.unprotect_rtp(w) is not None for w in wire] == [True, True, True, True, False]
    assert us.stats.expired == 1  # RFC 4568 §6.1: no more packets under this master key


# ------------------------------------------------------------------------------- from offer/answer


def negotiated(local: sdp.Crypto | None, remote: sdp.Crypto | None) -> sdp.Negotiated:
    return sdp.Negotiated(
        media_index=0,
        remote_address="127.0.0.1",
        remote_port=4000,
        remote_rtcp_port=4001,
        rtcp_mux=False,
        codec=sdp.Codec("PCMU", 8000, payload_type=0),
        local_payload_type=0,
        telephone_event_pt=None,
        local_telephone_event_pt=None,
        direction=sdp.Direction.SENDRECV,
        ptime=20,
        remote_hold=False,
        remote_crypto=remote,
        local_crypto=local,
    )


def test_context_for_an_offer_answer_outcome() -> None:
    offer_local = sdp.LocalMedia("127.0.0.1", 4000, (sdp.PCMU,), crypto=local_crypto())
    offer = sdp.build_offer(offer_local, session_id=1)
    assert offer.media[0].proto == "RTP/SAVP" and len(offer.media[0].crypto) == 4
    answer_local = sdp.LocalMedia("127.0.0.1", 5000, (sdp.PCMU,), crypto=local_crypto(["AEAD_AES_128_GCM"]))
    answer, theirs = sdp.answer(sdp.parse(offer.to_bytes()), answer_local, session_id=2)
    ours = sdp.process_answer(offer, sdp.parse(answer.to_bytes()))
    assert theirs is not None and ours is not None
    caller, callee = context_for(ours), context_for(theirs)
    assert caller is not None and callee is not None and caller.suite.name == "AEAD_AES_128_GCM"
    wire = caller.protect_rtp(rtp_packets(1)[0])
    assert wire is not None and callee.unprotect_rtp(wire) is not None
    assert context_for(ours, caller) is caller  # a re-INVITE that keeps the keys keeps the ROC
    rekeyed = negotiated(make_crypto("AEAD_AES_128_GCM", 2), ours.remote_crypto)
    assert context_for(rekeyed, caller) is not caller
    assert context_for(negotiated(None, None)) is None and context_for(None) is None
    with pytest.raises(SrtpError, match="our key is"):
        context_for(negotiated(make_crypto("AES_CM_128_HMAC_SHA1_32", 1), make_crypto("AEAD_AES_128_GCM", 1)))


def test_a_rekey_of_one_direction_keeps_the_other_directions_rollover_counter() -> None:
    """After a re-INVITE that changes only our key, the peer's stream must go on across its ROC."""
    ours, theirs = make_crypto(SUITE_80, 1), make_crypto(SUITE_80, 1)
    us, peer = SrtpContext(ours, theirs), SrtpContext(theirs, ours)
    source = RtpSender(0, sequence=65530)  # the peer's sequence numbers wrap: ROC 0 -> 1
    for packet in rtp_packets(10, source):
        assert us.unprotect_rtp(peer.protect_rtp(packet) or b"") == packet
    new_ours = make_crypto(SUITE_80, 1)
    rekeyed = context_for(negotiated(new_ours, theirs), us)
    assert rekeyed is not None and rekeyed is not us
    for packet in rtp_packets(5, source):  # ROC 1 now; a fresh inbound session would assume 0
        assert rekeyed.unprotect_rtp(peer.protect_rtp(packet) or b"") == packet
    fresh = SrtpContext(new_ours, theirs)
    assert fresh.unprotect_rtp(peer.protect_rtp(rtp_packets(1, source)[0]) or b"") is None
    # our side restarts under the new key, which the peer learns from the new answer
    peer_after = SrtpContext(theirs, new_ours)
    packet = rtp_packets(1)[0]
    assert peer_after.unprotect_rtp(rekeyed.protect_rtp(packet) or b"") == packet
    assert rekeyed.stats is us.stats and rekeyed.stats.unprotected == 15  # the leg's counters go on

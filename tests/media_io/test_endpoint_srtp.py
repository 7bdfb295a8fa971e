"""RTP endpoints with SRTP on loopback: two SRTP legs talk, forgeries never move the latch, relays
between an SRTP leg and a plain or SRTP leg carry the audio across."""

from __future__ import annotations

import asyncio
import socket

from voxswitch.media.endpoint import RtpEndpoint
from voxswitch.media.ports import RtpPortAllocator
from voxswitch.media.rtcp import ReceiverReport, build_compound
from voxswitch.media.rtp import RtpSender, parse_rtp
from voxswitch.media.srtp import SrtpContext, make_crypto

SUITE = "AES_CM_128_HMAC_SHA1_80"


def peer() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


async def recv(sock: socket.socket, wait: float = 1.0) -> bytes:
    return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 2048), wait)


async def nothing_arrives(sock: socket.socket, wait: float = 0.2) -> bool:
    try:
        await recv(sock, wait)
    except TimeoutError:
        return True
    return False


async def opened(ports: RtpPortAllocator, srtp: SrtpContext | None = None) -> RtpEndpoint:
    ep = RtpEndpoint(payload_type=0)
    ep.srtp = srtp
    await ep.open(*ports.allocate())
    return ep


async def test_two_srtp_endpoints_exchange_audio_and_rtcp() -> None:
    ports = RtpPortAllocator(30_600, 30_700, host="127.0.0.1")
    ka, kb = make_crypto(SUITE, 1), make_crypto(SUITE, 1)
    a = await opened(ports, SrtpContext(ka, kb))
    b = await opened(ports, SrtpContext(kb, ka))
    a.remote, b.remote = ("127.0.0.1", b.local_port), ("127.0.0.1", a.local_port)
    heard: list[bytes] = []
    b.consumer = lambda ep, data, pt: heard.append(parse_rtp(data).payload)
    for i in range(10):
        a.send_payload(bytes([i]) * 160, 160)
    await asyncio.sleep(0.1)
    assert heard == [bytes([i]) * 160 for i in range(10)]  # the consumer sees plain RTP
    assert b.packets_in == 10 and b.receiver is not None and b.receiver.received == 10
    assert a.srtp is not None and b.srtp is not None
    assert a.srtp.stats.protected == 10 and b.srtp.stats.unprotected == 10
    # RTCP goes through SRTCP both ways (to the RTP port + 1, RFC 3550 §11), plain to consumers
    reports: list[bytes] = []
    b.rtcp_consumer = reports.append
    report = build_compound([ReceiverReport(ssrc=a.sender.ssrc, reports=())])
    a.send_rtcp(report)
    await asyncio.sleep(0.1)
    assert b.rtcp_in == 1 and reports == [report]
    b.send_rtcp(report)
    await asyncio.sleep(0.1)
    assert a.rtcp_in == 1 and a.srtp.stats.unprotected == 1
    for ep in (a, b):
        ep.close()


async def test_a_forged_packet_is_dropped_counted_and_never_latched() -> None:
    ports = RtpPortAllocator(30_700, 30_800, host="127.0.0.1")
    k_leg, k_phone = make_crypto(SUITE, 1), make_crypto(SUITE, 1)
    leg = await opened(ports, SrtpContext(k_leg, k_phone))
    phone = SrtpContext(k_phone, k_leg)
    real, attacker = peer(), peer()
    leg.remote = real.getsockname()
    loop = asyncio.get_running_loop()
    sender = RtpSender(0)
    wire = phone.protect_rtp(sender.audio(b"\x11" * 160, 160))
    assert wire is not None
    await loop.sock_sendto(real, wire, ("127.0.0.1", leg.local_port))
    await asyncio.sleep(0.05)
    assert leg.remote == real.getsockname() and leg.packets_in == 1
    # The attacker knows the SSRC and sequence numbers (they are in clear) but not the key; the
    # latch would follow a new SSRC after 1 s of quiet, so wait that long first.
    await asyncio.sleep(1.1)
    forged = bytearray(phone.protect_rtp(sender.audio(b"\x22" * 160, 160)) or b"")
    forged[-1] ^= 0xFF  # a wrong tag
    plain = RtpSender(0).audio(b"\x33" * 160, 160)  # plain RTP from a new SSRC
    replay = wire  # a replay of the genuine packet, from elsewhere
    for junk in (bytes(forged), plain, replay):
        await loop.sock_sendto(attacker, junk, ("127.0.0.1", leg.local_port))
    await asyncio.sleep(0.1)
    assert leg.remote == real.getsockname()  # the latch did not move
    assert leg.packets_in == 1 and leg.receiver is not None and leg.receiver.received == 1
    assert leg.srtp is not None and leg.srtp.stats.auth_failures == 2 and leg.srtp.stats.replays == 1
    # SRTCP forgeries do not reach the RTCP consumer either
    fake_srtcp = bytes.fromhex("81c90001") + bytes(4) + bytes(14)
    await loop.sock_sendto(attacker, fake_srtcp, ("127.0.0.1", leg.local_port + 1))
    await asyncio.sleep(0.05)
    stats = leg.srtp.stats
    assert leg.rtcp_in == 0 and stats.auth_failures + stats.errors == 3  # libsrtp: a malformed SRTCP
    for s in (real, attacker):
        s.close()
    leg.close()


async def relay(secure_a: bool, secure_b: bool, port_base: int) -> None:
    """Phone X talks to leg A, leg A relays to leg B, leg B to phone Y; and back."""
    ports = RtpPortAllocator(port_base, port_base + 100, host="127.0.0.1")
    kx, ka, kb, ky = (make_crypto(SUITE, 1) for _ in range(4))
    a = await opened(ports, SrtpContext(ka, kx) if secure_a else None)
    b = await opened(ports, SrtpContext(kb, ky) if secure_b else None)
    phone_x = SrtpContext(kx, ka) if secure_a else None
    phone_y = SrtpContext(ky, kb) if secure_b else None
    x, y = peer(), peer()
    a.remote, b.remote = x.getsockname(), y.getsockname()
    a.relay_to, b.relay_to = b, a
    loop = asyncio.get_running_loop()
    sx, sy = RtpSender(0), RtpSender(0)

    def wire_out(ctx: SrtpContext | None, packet: bytes) -> bytes:
        out = ctx.protect_rtp(packet) if ctx is not None else packet
        assert out is not None
        return out

    def wire_in(ctx: SrtpContext | None, data: bytes) -> bytes:
        out = ctx.unprotect_rtp(data) if ctx is not None else data
        assert out is not None, "the relayed packet did not authenticate under the leg's key"
        return out

    for i in range(5):
        packet = sx.audio(bytes([i]) * 160, 160)
        await loop.sock_sendto(x, wire_out(phone_x, packet), ("127.0.0.1", a.local_port))
        got = await recv(y)
        assert (got != packet) is secure_b  # what phone Y gets is SRTP exactly when its leg is
        assert wire_in(phone_y, got) == packet  # same header, same payload: relayed untouched
        back = sy.audio(b"\x7f" * 160, 160)
        await loop.sock_sendto(y, wire_out(phone_y, back), ("127.0.0.1", b.local_port))
        assert wire_in(phone_x, await recv(x)) == back
    # a forgery at leg A is not relayed
    if secure_a:
        await loop.sock_sendto(x, sx.audio(b"\x00" * 160, 160), ("127.0.0.1", a.local_port))
        assert await nothing_arrives(y)
        assert a.srtp is not None and a.srtp.stats.auth_failures == 1
    assert a.packets_in == b.packets_in == 5 and a.packets_out == b.packets_out == 5
    for s in (x, y):
        s.close()
    a.close()
    b.close()


async def test_relay_srtp_to_srtp() -> None:
    await relay(True, True, 30_800)


async def test_relay_srtp_to_plain_and_plain_to_srtp() -> None:
    await relay(True, False, 30_900)
    await relay(False, True, 31_000)


async def test_relay_plain_to_plain_is_untouched() -> None:
    await relay(False, False, 31_100)

"""RTP endpoints on loopback: relay between two legs, latching, statistics; the shared 20 ms clock."""

from __future__ import annotations

import asyncio
import itertools
import socket

from voxswitch.media.clock import MediaClock
from voxswitch.media.endpoint import RtpEndpoint
from voxswitch.media.ports import PortRangeExhausted, RtpPortAllocator
from voxswitch.media.rtp import RtpSender, parse_rtp


def peer() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


async def recv(sock: socket.socket, wait: float = 1.0) -> bytes:
    return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 2048), wait)


async def test_two_legs_relay_both_ways_and_count() -> None:
    ports = RtpPortAllocator(30_000, 30_100, host="127.0.0.1")
    a, b = RtpEndpoint(payload_type=0), RtpEndpoint(payload_type=0)
    await a.open(*ports.allocate())
    await b.open(*ports.allocate())
    assert a.local_port % 2 == 0 and b.local_port == a.local_port + 2 and ports.in_use == 2
    x, y = peer(), peer()  # the two phones
    a.remote, b.remote = x.getsockname(), y.getsockname()  # what their SDP said
    a.relay_to, b.relay_to = b, a
    loop = asyncio.get_running_loop()
    sx, sy = RtpSender(0), RtpSender(0)
    for i in range(5):
        await loop.sock_sendto(x, sx.audio(bytes([i]) * 160, 160), ("127.0.0.1", a.local_port))
        got = parse_rtp(await recv(y))
        assert got.payload == bytes([i]) * 160 and got.ssrc == sx.ssrc  # relayed untouched
        await loop.sock_sendto(y, sy.audio(b"\x7f" * 160, 160), ("127.0.0.1", b.local_port))
        assert parse_rtp(await recv(x)).ssrc == sy.ssrc
    assert a.packets_in == b.packets_in == 5 and a.receiver is not None and a.receiver.received == 5
    assert a.idle_for(loop.time()) < 1.0
    # muting a leg stops what it hears from reaching the other side
    a.muted = True
    await loop.sock_sendto(x, sx.audio(b"\x00" * 160, 160), ("127.0.0.1", a.local_port))
    try:
        await recv(y, 0.2)
        raise AssertionError("a muted leg must not be relayed")
    except TimeoutError:
        pass
    for s in (x, y):
        s.close()
    a.close()
    b.close()


async def test_symmetric_rtp_latches_to_where_packets_really_come_from() -> None:
    ports = RtpPortAllocator(30_200, 30_300, host="127.0.0.1")
    ep = RtpEndpoint(payload_type=8)
    await ep.open(*ports.allocate())
    ep.remote = ("127.0.0.1", 9)  # the SDP's private address, unreachable
    nat = peer()
    loop = asyncio.get_running_loop()
    await loop.sock_sendto(nat, RtpSender(8).audio(b"\xd5" * 160, 160), ("127.0.0.1", ep.local_port))
    await asyncio.sleep(0.05)
    assert ep.remote == nat.getsockname()
    ep.send_payload(b"\xd5" * 160, 160)
    assert parse_rtp(await recv(nat)).payload_type == 8
    # a stranger with another SSRC cannot steal the stream while the latched source is talking
    stranger = peer()
    await loop.sock_sendto(stranger, RtpSender(8).audio(b"\x00" * 160, 160), ("127.0.0.1", ep.local_port))
    await asyncio.sleep(0.05)
    assert ep.remote == nat.getsockname()
    nat.close()
    stranger.close()
    ep.close()


def test_port_range_exhaustion() -> None:
    ports = RtpPortAllocator(30_400, 30_404, host="127.0.0.1")
    held = [ports.allocate(), ports.allocate()]
    try:
        ports.allocate()
        raise AssertionError("only two pairs fit")
    except PortRangeExhausted:
        pass
    for rtp, rtcp in held:
        port = rtp.getsockname()[1]
        rtp.close()
        rtcp.close()
        ports.release(port)
    assert ports.in_use == 0


async def test_one_clock_paces_every_source_at_20ms() -> None:
    clock = MediaClock()
    seen: dict[str, list[float]] = {"a": [], "b": []}
    ha = clock.add(seen["a"].append)
    clock.add(seen["b"].append)
    await asyncio.sleep(0.5)
    clock.remove(ha)
    await asyncio.sleep(0.1)
    await clock.stop()
    a, b = seen["a"], seen["b"]
    assert 22 <= len(a) <= 27 and len(b) > len(a)  # 25 ticks in 0.5 s, give or take scheduling
    steps = [round(y - x, 3) for x, y in itertools.pairwise(a)]
    assert all(s == 0.02 for s in steps)  # the schedule never drifts: due times, not wake-ups

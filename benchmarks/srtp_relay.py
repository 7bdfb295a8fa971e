"""Per-packet cost of relaying between two legs, plain and with SRTP on either side (issue #4 item 7).

Two measurements, both on one core:

1. Hot path: `RtpEndpoint.datagram_received` of leg A relaying to leg B, called in a loop with
   172-byte G.711 packets; B's transport is a stub at the socket seam that only counts `sendto`.
   CPU time of the process, fastest of several runs, so that other work on a shared machine
   inflates it as little as possible; `--before` times an older endpoint.py in alternation.
   This is the Python work per packet that SRTP adds to or must not add to, without the kernel.
2. Loopback: a blocking sender pushes packets at A's real socket on uvloop, a receiver counts what
   B sends on; packets/s relayed end to end (receive, unprotect, protect, send).

The peer figure beside ours is libsrtp itself through pylibsrtp (protect + unprotect of the same
packet in a bare loop): the floor any Python SRTP relay stands on.

    .venv/bin/python benchmarks/srtp_relay.py [--packets 200000] [--loopback-seconds 3] [--before FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from voxswitch.media.endpoint import RtpEndpoint
from voxswitch.media.rtp import RtpSender

try:
    from voxswitch.media import srtp as srtp_mod
except ImportError:  # before SRTP existed: only the plain figure
    srtp_mod = None  # type: ignore[assignment]


class CountingTransport:
    """The socket seam: what the endpoint would send, counted, not sent."""

    def __init__(self) -> None:
        self.sent = 0

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent += 1

    def close(self) -> None:
        pass


class _Loop:
    def __init__(self) -> None:
        self.t = 0.0

    def time(self) -> float:
        return self.t


def _key() -> Any:
    assert srtp_mod is not None
    return srtp_mod.make_crypto("AES_CM_128_HMAC_SHA1_80", 1)


def _pair(secure_a: bool, secure_b: bool) -> tuple[RtpEndpoint, RtpEndpoint, Any]:
    """Leg A (receives from phone A) relaying to leg B, and phone A's context when A is SRTP."""
    a, b = RtpEndpoint(payload_type=0), RtpEndpoint(payload_type=0)
    for ep in (a, b):
        ep._loop = _Loop()  # type: ignore[assignment]
        ep.transport = CountingTransport()  # type: ignore[assignment]
        ep.remote = ("127.0.0.1", 40000)
    a.relay_to = b
    phone = None
    if secure_a:
        assert srtp_mod is not None
        phone_key, leg_key = _key(), _key()
        a.srtp = srtp_mod.SrtpContext(leg_key, phone_key)  # type: ignore[attr-defined]
        phone = srtp_mod.SrtpContext(phone_key, leg_key)
    if secure_b:
        assert srtp_mod is not None
        b.srtp = srtp_mod.SrtpContext(_key(), _key())  # type: ignore[attr-defined]
    return a, b, phone


def hot_path(secure_a: bool, secure_b: bool, n: int, endpoint: type = RtpEndpoint) -> float:
    """Microseconds per relayed packet (the fastest of 5 runs: the machine is shared)."""
    runs = []
    for _ in range(5):
        a, b, phone = _pair(secure_a, secure_b) if endpoint is RtpEndpoint else _plain_pair(endpoint)
        sender = RtpSender(0)
        wire = [sender.audio(b"\x55" * 160, 160) for _ in range(n)]
        if phone is not None:
            wire = [phone.protect_rtp(p) for p in wire]
        addr = ("127.0.0.1", 40002)
        receive = a.datagram_received
        start = time.process_time()  # CPU time: a shared machine's preemption does not count
        for data in wire:
            receive(data, addr)
        elapsed = time.process_time() - start
        assert b.transport.sent == n, (b.transport.sent, n)
        runs.append(elapsed / n * 1e6)
    return min(runs)


def _plain_pair(endpoint: type) -> tuple[Any, Any, None]:
    """A plain pair of another endpoint class (the A/B comparison against an older endpoint.py)."""
    a, b = endpoint(payload_type=0), endpoint(payload_type=0)
    for ep in (a, b):
        ep._loop = _Loop()
        ep.transport = CountingTransport()
        ep.remote = ("127.0.0.1", 40000)
    a.relay_to = b
    return a, b, None


def libsrtp_floor(n: int) -> float:
    assert srtp_mod is not None
    k1, k2 = srtp_mod.make_crypto("AES_CM_128_HMAC_SHA1_80", 1), srtp_mod.make_crypto("AES_CM_128_HMAC_SHA1_80", 1)
    phone, leg_in, leg_out, far = (
        srtp_mod.SrtpContext(k1, k2),
        srtp_mod.SrtpContext(k2, k1),
        srtp_mod.SrtpContext(k2, k1),
        srtp_mod.SrtpContext(k1, k2),
    )
    del far
    sender = RtpSender(0)
    wire = [phone.protect_rtp(sender.audio(b"\x55" * 160, 160)) for _ in range(n)]
    rx, tx = leg_in._rx, leg_out._tx
    start = time.process_time()
    for data in wire:
        tx.protect(rx.unprotect(data))
    return (time.process_time() - start) / n * 1e6


async def loopback(secure: bool, seconds: float) -> float:
    """Packets/s relayed A -> B over real loopback sockets (both legs SRTP when ``secure``)."""
    loop = asyncio.get_running_loop()
    a, b = RtpEndpoint(payload_type=0), RtpEndpoint(payload_type=0)
    socks = []
    for ep in (a, b):
        rtp, rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        rtcp.bind(("127.0.0.1", 0))
        rtp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        socks += [rtp, rtcp]
        await ep.open(rtp, rtcp)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sink.settimeout(0.5)
    b.remote = sink.getsockname()
    a.relay_to = b
    sender = RtpSender(0)
    phone = None
    if secure:
        assert srtp_mod is not None
        k_phone, k_a, k_b, k_far = (srtp_mod.make_crypto("AES_CM_128_HMAC_SHA1_80", 1) for _ in range(4))
        a.srtp = srtp_mod.SrtpContext(k_a, k_phone)  # type: ignore[attr-defined]
        b.srtp = srtp_mod.SrtpContext(k_b, k_far)  # type: ignore[attr-defined]
        phone = srtp_mod.SrtpContext(k_phone, k_a)
    n = 400_000
    wire = [sender.audio(b"\x55" * 160, 160) for _ in range(n)]
    if phone is not None:
        wire = [phone.protect_rtp(p) for p in wire]
    received = 0
    stop = threading.Event()

    def drain() -> None:
        nonlocal received
        while not stop.is_set():
            try:
                sink.recv(2048)
                received += 1
            except TimeoutError:
                pass

    def blast() -> None:
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        target = ("127.0.0.1", a.local_port)
        deadline = time.perf_counter() + seconds
        i = 0
        while time.perf_counter() < deadline and i < n:
            out.sendto(wire[i], target)
            i += 1
            if i % 64 == 0:
                time.sleep(0)  # let the relay keep up rather than overflow its buffer
        out.close()

    t_drain = threading.Thread(target=drain)
    t_drain.start()
    start = time.perf_counter()
    await loop.run_in_executor(None, blast)
    await asyncio.sleep(0.3)
    elapsed = time.perf_counter() - start - 0.3
    stop.set()
    t_drain.join()
    for ep in (a, b):
        ep.close()
    sink.close()
    return received / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--loopback-seconds", type=float, default=0.0, help="0 skips the loopback figure")
    parser.add_argument(
        "--before",
        type=Path,
        help="an older endpoint.py (git show REV:src/voxswitch/media/endpoint.py > FILE): its plain relay "
        "is timed in alternation with today's, so both see the same machine load",
    )
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    print(f"load average: {os.getloadavg()}")
    cases = [("plain -> plain", False, False)]
    if srtp_mod is not None and hasattr(RtpEndpoint(payload_type=0), "srtp"):
        cases += [("SRTP -> plain", True, False), ("plain -> SRTP", False, True), ("SRTP -> SRTP", True, True)]
    print(f"hot path, {args.packets} packets of 172 bytes, fastest of 5 runs:")
    for name, sa, sb in cases:
        print(f"  {name:16s} {hot_path(sa, sb, args.packets):6.3f} us/packet")
    if args.before is not None:
        spec = importlib.util.spec_from_file_location("endpoint_before", args.before)
        assert spec is not None and spec.loader is not None
        before = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(before)
        then, now = [], []
        for _ in range(10):
            then.append(hot_path(False, False, args.packets, before.RtpEndpoint))
            now.append(hot_path(False, False, args.packets))
        print(f"  plain -> plain, alternating: before {min(then):.3f} us/packet, now {min(now):.3f} us/packet")
    if srtp_mod is not None:
        print(f"  libsrtp floor    {libsrtp_floor(args.packets):6.3f} us/packet (pylibsrtp unprotect + protect only)")
    if args.loopback_seconds > 0:
        import uvloop

        for secure in (False, True) if len(cases) > 1 else (False,):
            rate = uvloop.run(loopback(secure, args.loopback_seconds))
            print(f"loopback on uvloop, {'SRTP -> SRTP' if secure else 'plain -> plain'}: {rate:,.0f} packets/s")


if __name__ == "__main__":
    main()

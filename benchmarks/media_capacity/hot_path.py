"""What our own Python costs per relayed RTP packet: `RtpEndpoint.datagram_received` -> `send_raw`.

No sockets: the bridged endpoint's transport only counts, so the figure is the endpoint's code alone
(header, latch, RFC 3550 receiver state, relay), over 1,000 endpoint pairs in turn so that, as in a
relay holding 1,000 calls, each packet finds its endpoint's objects out of the CPU's nearest caches.
A quick before/after for changes to src/voxswitch/media/endpoint.py; the whole relay (uvloop's C
code, the kernel) is measured by run.py.

    taskset -c 0 chrt --fifo 1 .venv/bin/python benchmarks/media_capacity/hot_path.py   # ~1.2-1.8 us
"""

from __future__ import annotations

import asyncio
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from voxswitch.media.endpoint import RtpEndpoint

PAIRS = 1000
PACKETS = 200_000


class CountingTransport:
    """Takes the place of uvloop's UDP transport: counts what would be sent."""

    def __init__(self) -> None:
        self.sent = 0

    def sendto(self, data: bytes, addr: object) -> None:
        self.sent += 1


async def measure(rounds: int = 5) -> float:
    """Best microseconds per packet over `rounds` passes."""
    loop = asyncio.get_running_loop()
    inbound = []
    for _ in range(PAIRS):
        a, b = RtpEndpoint(payload_type=8), RtpEndpoint(payload_type=8)
        a._loop = b._loop = loop  # what open() sets
        b.transport, b.remote = CountingTransport(), ("127.0.0.1", 30000)  # type: ignore[assignment]
        a.relay_to = b
        inbound.append(a)
    packets = [struct.pack("!BBHII", 0x80, 8, 0, 0, 0xCA110000 + i) + bytes(160) for i in range(PAIRS)]
    source = ("127.0.0.1", 30010)
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for i in range(PACKETS):
            j = i % PAIRS
            inbound[j].datagram_received(packets[j], source)
        best = min(best, (time.perf_counter() - started) / PACKETS * 1e6)
    return best


def main() -> None:
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    print(f"RtpEndpoint relay path: {runner(measure()):.2f} us per packet ({PAIRS} endpoint pairs)")


if __name__ == "__main__":
    main()

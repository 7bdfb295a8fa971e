"""Time from the 200 OK to the first RTP packet of a `say`, on a cold phrase (issue #4: under 150 ms).

Measured from the caller's side, as a phone would see it: a raw SIP client on loopback registers
nothing, calls an app with digest auth, stamps the 200 OK's arrival, ACKs, and stamps the first RTP
packet on its media port. Every call says a different sentence, so the TTS cache never helps.

    .venv/bin/python benchmarks/say_latency.py [--calls 30]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import socket
import statistics
import tempfile
import time
from pathlib import Path

from voxswitch.api.app import create_app
from voxswitch.config import Settings
from voxswitch.engine.apps import CallContext, app
from voxswitch.sip.digest import answer_challenge
from voxswitch.sip.message import Response, parse_message


@app("bench-say")
async def bench_say(ctx: CallContext) -> None:
    await ctx.say(f"This is call number {secrets.randbelow(10**6)} of the latency benchmark.")
    await ctx.hangup()


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def one_call(sip_port: int) -> float:
    loop = asyncio.get_running_loop()
    sig = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s in (sig, rtp):
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
    lport, mport = sig.getsockname()[1], rtp.getsockname()[1]
    call_id, tag = secrets.token_hex(8), secrets.token_hex(4)
    sdp = (
        f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {mport} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    )

    def invite(cseq: int, auth: str | None) -> bytes:
        lines = [
            f"INVITE sip:bench-say@127.0.0.1:{sip_port} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK{secrets.token_hex(8)};rport",
            "Max-Forwards: 70",
            f"From: <sip:1001@127.0.0.1>;tag={tag}",
            f"To: <sip:bench-say@127.0.0.1:{sip_port}>",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} INVITE",
            f"Contact: <sip:1001@127.0.0.1:{lport}>",
            "Content-Type: application/sdp",
            *([f"Proxy-Authorization: {auth}"] if auth else []),
            f"Content-Length: {len(sdp)}",
            "",
            sdp,
        ]
        return "\r\n".join(lines).encode()

    async def final() -> Response:
        while True:
            msg = parse_message(await loop.sock_recv(sig, 65535))
            if isinstance(msg, Response) and msg.status >= 200:
                return msg

    def ack(resp: Response, cseq: int) -> bytes:
        return (
            f"ACK sip:bench-say@127.0.0.1:{sip_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK{secrets.token_hex(8)}\r\nMax-Forwards: 70\r\n"
            f"From: <sip:1001@127.0.0.1>;tag={tag}\r\nTo: {resp.get('to')}\r\nCall-ID: {call_id}\r\n"
            f"CSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n"
        ).encode()

    target = ("127.0.0.1", sip_port)
    await loop.sock_sendto(sig, invite(1, None), target)
    challenge = await asyncio.wait_for(final(), 5)
    auth = answer_challenge(
        challenge.get_all("proxy-authenticate"),
        "INVITE",
        f"sip:bench-say@127.0.0.1:{sip_port}",
        "1001",
        "bench-password",
        cnonce=secrets.token_hex(6),
    )
    await loop.sock_sendto(sig, invite(2, auth), target)
    ok = await asyncio.wait_for(final(), 5)
    answered = time.perf_counter()
    assert ok.status == 200, ok.status
    await loop.sock_sendto(sig, ack(ok, 2), target)
    await asyncio.wait_for(loop.sock_recv(rtp, 2048), 5)
    first_rtp = time.perf_counter()
    await asyncio.wait_for(loop.sock_recv(sig, 65535), 15)  # our BYE when the sentence is done
    sig.close()
    rtp.close()
    return (first_rtp - answered) * 1000


async def main(calls: int) -> None:
    data = Path(tempfile.mkdtemp(prefix="vx-bench-say-"))
    sip_port = free_port(socket.SOCK_DGRAM)
    settings = Settings(
        data_dir=data,
        sip_host="127.0.0.1",
        sip_port=sip_port,
        sip_tls_port=free_port(socket.SOCK_STREAM),
        log_level="WARNING",
        rate_limits_enabled=False,
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        await application.state.vox.devices.create(name="bench", username="1001", password="bench-password")
        samples = []
        for i in range(calls):
            samples.append(await one_call(sip_port))
            print(f"\r  call {i + 1}/{calls}: {samples[-1]:.1f} ms", end="", flush=True)
        print()
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(0.99 * len(samples)))]
    print(
        f"200 OK -> first RTP of a cold `say` (espeak-ng): p50 {statistics.median(samples):.1f} ms, "
        f"p99 {p99:.1f} ms, max {samples[-1]:.1f} ms over {calls} calls (target < 150 ms)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=30)
    asyncio.run(main(parser.parse_args().calls))

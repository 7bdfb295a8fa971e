"""An open-loop HTTP load generator: POSTs at a fixed rate, latency from each request's scheduled
start (so a stalled server is charged for the requests it delayed: no coordinated omission).

Raw HTTP/1.1 over asyncio streams with keep-alive, on uvloop, in its own process: it costs far
less CPU per request than an HTTP client library, which matters on a 2-core machine where client
and server share the cores. Prints one JSON object.

    python benchmarks/voice_api/load.py --url http://127.0.0.1:8080/voice/call --rate 500 --seconds 10 \
        --header 'Authorization: Bearer vxk_...' --body '{"ToNumber": "+15551234567", ...}'
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from urllib.parse import urlsplit


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def run(url: str, rate: float, seconds: float, body: bytes, headers: list[str], connections: int) -> dict:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        + "".join(f"{h}\r\n" for h in headers)
        + f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    total = int(rate * seconds)
    slots: asyncio.Queue[float] = asyncio.Queue()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    start = time.perf_counter() + 0.2

    async def schedule() -> None:
        for i in range(total):
            at = start + i / rate
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            slots.put_nowait(at)
        for _ in range(connections):
            slots.put_nowait(-1.0)

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                at = await slots.get()
                if at < 0:
                    return
                try:
                    writer.write(request)
                    status = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                latencies.append(time.perf_counter() - at)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    workers = [asyncio.ensure_future(worker()) for _ in range(connections)]
    await schedule()
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    ok = sum(n for s, n in statuses.items() if 200 <= s < 300)
    ms = [x * 1000 for x in latencies]
    return {
        "offered_rate": rate,
        "requests": total,
        "accepted": ok,
        "accepted_per_second": ok / elapsed if elapsed > 0 else 0.0,
        "elapsed_seconds": elapsed,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": errors,
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else float("nan"),
        "mean_ms": statistics.fmean(ms) if ms else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--rate", type=float, required=True, help="requests per second, offered")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--body", required=True)
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(args.url, args.rate, args.seconds, args.body.encode(), args.header, args.connections))
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Voice-call API benchmark: durable enqueue rate and latency, and calls completed per minute,
Voxswitch beside the original's architecture (FastAPI + Celery + Redis) measured in the same run.

1. Enqueue. `POST /voice/call` at fixed offered rates (open loop, benchmarks/voice_api/load.py),
   against `voxswitch serve` on SQLite (synchronous=FULL; every 202 follows a commit; an API key
   on each request; workers off, so only the enqueue is measured), then against the peer
   (`celery_peer.py`: the view calls `apply_async` into Redis).
2. Throughput. N calls queued at once; Voxswitch's workers place them through SIPp as the trunk
   (digest challenge on every INVITE, answered at once, "Hi." spoken, hung up) at the given
   concurrency; the peer's Celery worker (prefork, same concurrency) runs N tasks that dial nothing.

    .venv/bin/python benchmarks/voice_api/run.py --rates 250,500 --seconds 10 --calls 300 --concurrency 20

Prints a table, writes results/voice_api-<time>.json and, with --chart, a PNG.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.peers import ports  # noqa: E402
from tests.peers.sipp import SippConfig, SippProcess, scenario  # noqa: E402

BIN = Path(sys.executable).parent
ADMIN = ("admin@example.com", "Adm1n-Passw0rd!")
BODY = {"ToNumber": "+15551234567", "FromNumber": "12156", "Text": "Hello from the benchmark."}


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def voxswitch_env(data: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOXSWITCH_", "SIP_"))}
    env.update(
        VOXSWITCH_DATA_DIR=str(data),
        VOXSWITCH_HTTP_HOST="127.0.0.1",
        VOXSWITCH_HTTP_PORT=str(port),
        VOXSWITCH_ADMIN_EMAIL=ADMIN[0],
        VOXSWITCH_ADMIN_PASSWORD=ADMIN[1],
        VOXSWITCH_LOG_LEVEL="WARNING",
        VOXSWITCH_SIP_HOST="127.0.0.1",
        VOXSWITCH_SIP_PORT=str(ports.free_sip_port()),
        VOXSWITCH_SIP_TLS_PORT=str(ports.free_tcp_port()),
        **extra,
    )
    return env


def start_voxswitch(tmp: Path, name: str, **extra: str) -> tuple[subprocess.Popen[bytes], str, str]:
    """A served Voxswitch and an API key for the admin."""
    port = ports.free_tcp_port()
    env = voxswitch_env(tmp / name, port, **extra)
    log = (tmp / f"{name}.log").open("wb")
    proc = subprocess.Popen([str(BIN / "voxswitch"), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health", proc)
    key = subprocess.run(
        [str(BIN / "voxswitch"), "apikey", "create", ADMIN[0], "--name", "bench"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.strip()
    return proc, url, key


def run_load(url: str, rate: float, seconds: float, key: str | None) -> dict[str, Any]:
    args = [sys.executable, str(HERE / "load.py"), "--url", f"{url}/voice/call", "--rate", str(rate)]
    args += ["--seconds", str(seconds), "--body", json.dumps(BODY)]
    if key:
        args += ["--header", f"Authorization: Bearer {key}"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds * 10 + 60, check=True).stdout
    result = json.loads(out)
    result["load_average"] = load_average()
    return result


def enqueue_ladder(url: str, rates: list[float], seconds: float, key: str | None) -> list[dict[str, Any]]:
    results = []
    for rate in rates:
        r = run_load(url, rate, seconds, key)
        print(
            f"  offered {rate:>6.0f}/s: accepted {r['accepted_per_second']:7.1f}/s  p50 {r['p50_ms']:6.1f} ms  "
            f"p99 {r['p99_ms']:7.1f} ms  non-2xx {r['requests'] - r['accepted']}  (load {r['load_average']})",
            flush=True,
        )
        results.append(r)
    return results


class Sink:
    """Where the SIPp trunk's SDP sends our RTP: read and dropped."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.packets = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sock.recv(2048)
                self.packets += 1
            except TimeoutError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def voxswitch_throughput(tmp: Path, calls: int, concurrency: int) -> dict[str, Any]:
    sink = Sink()
    config = SippConfig(
        scenario("uas_challenge_ring_answer_sink"),
        calls=None,
        template={"ring_ms": "0"},
        keys={"realm": "trunk.example", "algorithm": "MD5", "sink_host": "127.0.0.1", "sink_port": str(sink.port)},
        trace_msg=False,
    )
    with SippProcess(config, tmp, name="trunk") as trunk:
        host, port = trunk.address.rsplit(":", 1)
        proc, url, key = start_voxswitch(
            tmp,
            "voxswitch-calls",
            SIP_TRUNK_IP=host,
            SIP_TRUNK_PORT=port,
            SIP_USERNAME="trunkuser",
            SIP_PASSWORD="trunk-secret",
            VOXSWITCH_VOICE_CONCURRENCY=str(concurrency),
            VOXSWITCH_VOICE_CALLS_PER_SECOND="1000",
            VOXSWITCH_VOICE_POLL_SECONDS="0.2",
            VOXSWITCH_VOICE_RETRY_FAILED="0",
        )
        try:
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=url, headers=headers, timeout=30) as c:
                entries = [{**BODY, "ToNumber": f"+1555300{i:04d}", "Text": "Hi."} for i in range(calls)]
                started = time.monotonic()
                r = c.post("/voice/bulk", json={"calls": entries})
                r.raise_for_status()
                while True:
                    m = c.get("/api/metrics").json()["calls"]
                    if m["completed"] + m["failed"] >= calls:
                        break
                    time.sleep(0.2)
                elapsed = time.monotonic() - started
        finally:
            stop(proc)
    sink.close()
    return {
        "calls": calls,
        "concurrency": concurrency,
        "completed": m["completed"],
        "failed": m["failed"],
        "seconds": elapsed,
        "per_minute": m["completed"] / elapsed * 60,
        "rtp_packets_at_trunk": sink.packets,
        "load_average": load_average(),
    }


def start_peer(tmp: Path, concurrency: int) -> tuple[list[subprocess.Popen[bytes]], str, str]:
    redis_port = ports.free_tcp_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    redis_exe = shutil.which("redis-server") or "redis-server"
    procs = [
        subprocess.Popen(
            [redis_exe, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
    ]
    env = {**os.environ, "PEER_REDIS_URL": redis_url, "PYTHONPATH": str(REPO)}
    worker_log = (tmp / "celery-worker.log").open("wb")
    procs.append(
        subprocess.Popen(
            [
                *(
                    str(BIN / "celery"),
                    "-A",
                    "benchmarks.voice_api.celery_peer:celery",
                    "worker",
                    "-c",
                    str(concurrency),
                ),
                *("--pool", "prefork", "--loglevel", "WARNING", "--without-gossip", "--without-mingle"),
            ],
            env=env,
            cwd=REPO,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        )
    )
    port = ports.free_tcp_port()
    procs.append(
        subprocess.Popen(
            [
                *(str(BIN / "uvicorn"), "benchmarks.voice_api.celery_peer:app", "--host", "127.0.0.1"),
                *("--port", str(port), "--loop", "uvloop", "--no-access-log", "--log-level", "warning"),
            ],
            env=env,
            cwd=REPO,
            stdout=(tmp / "peer-http.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/docs", procs[-1])
    time.sleep(3)
    if procs[1].poll() is not None:
        raise RuntimeError(f"the Celery worker exited: see {tmp / 'celery-worker.log'}")
    return procs, url, redis_url


def peer_throughput(redis_url: str, calls: int, concurrency: int) -> dict[str, Any]:
    import redis

    os.environ["PEER_REDIS_URL"] = redis_url
    from benchmarks.voice_api import celery_peer

    r = redis.Redis.from_url(redis_url)
    # the enqueue ladder left thousands of tasks queued: drop them and let the worker go idle, so
    # only these `calls` tasks are timed (ours run on a fresh server for the same reason)
    celery_peer.celery.control.purge()
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() - quiet_since < 2.0:
        now = int(r.get("peer:done") or 0)
        if now != last:
            last, quiet_since = now, time.monotonic()
        time.sleep(0.2)
    r.set("peer:done", 0)
    started = time.monotonic()
    for i in range(calls):
        celery_peer.make_call.apply_async((f"bench-{i}", f"+1555300{i:04d}", "12156", "Hi."))
    deadline = started + 300
    while int(r.get("peer:done") or 0) < calls and time.monotonic() < deadline:
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    done = int(r.get("peer:done") or 0)
    return {
        "calls": calls,
        "concurrency": concurrency,
        "completed": done,
        "seconds": elapsed,
        "per_minute": done / elapsed * 60,
        "load_average": load_average(),
    }


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, label in (("voxswitch", "Voxswitch (SQLite, durable)"), ("peer", "FastAPI + Celery + Redis")):
        rows = results["enqueue"][name]
        rates = [r["offered_rate"] for r in rows]
        ax1.plot(rates, [r["p99_ms"] for r in rows], marker="o", label=f"{label} p99")
        ax1.plot(rates, [r["p50_ms"] for r in rows], marker=".", linestyle="--", label=f"{label} p50")
    ax1.axhline(20, color="grey", linewidth=0.8, linestyle=":")
    ax1.set_xlabel("offered POST /voice/call per second")
    ax1.set_ylabel("latency, ms (log)")
    ax1.set_yscale("log")
    ax1.set_title("Enqueue latency")
    ax1.legend(fontsize=7)
    t = results["throughput"]
    names = [
        f"Voxswitch\n(SIPp trunk, c={t['voxswitch']['concurrency']})",
        f"Celery worker\n(dials nothing, c={t['peer']['concurrency']})",
    ]
    ax2.bar(names, [t["voxswitch"]["per_minute"], t["peer"]["per_minute"]], color=["tab:blue", "tab:orange"])
    ax2.set_ylabel("calls (tasks) completed per minute")
    ax2.set_title(f"Throughput, {t['voxswitch']['calls']} queued at once")
    fig.suptitle(f"benchmarks/voice_api, {results['date']} (load average {results['load_average_start']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description="voice-call API: enqueue and throughput, beside Celery + Redis")
    ap.add_argument("--rates", default="250,500", help="offered enqueue rates, comma-separated")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--chart", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    rates = [float(x) for x in args.rates.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="voxswitch-voice-bench-"))
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_start": load_average(),
        "enqueue": {},
        "throughput": {},
    }
    print(f"load average at start: {results['load_average_start']}; files in {tmp}", flush=True)

    print("Voxswitch enqueue (SQLite, synchronous=FULL, API key, workers off):", flush=True)
    proc, url, key = start_voxswitch(tmp, "voxswitch-enqueue", VOXSWITCH_VOICE_WORKERS="false")
    try:
        results["enqueue"]["voxswitch"] = enqueue_ladder(url, rates, args.seconds, key)
    finally:
        stop(proc)

    print(f"Peer enqueue (FastAPI view -> Celery apply_async -> Redis; worker -c {args.concurrency}):", flush=True)
    procs, peer_url, redis_url = start_peer(tmp, args.concurrency)
    try:
        results["enqueue"]["peer"] = enqueue_ladder(peer_url, rates, args.seconds, None)
        time.sleep(2)
        print("Peer throughput (Celery worker, tasks that dial nothing):", flush=True)
        results["throughput"]["peer"] = peer_throughput(redis_url, args.calls, args.concurrency)
        p = results["throughput"]["peer"]
        print(f"  {p['completed']} tasks in {p['seconds']:.1f} s: {p['per_minute']:.0f}/min", flush=True)
    finally:
        for p in reversed(procs):
            stop(p)

    print(f"Voxswitch throughput ({args.calls} calls through SIPp, concurrency {args.concurrency}):", flush=True)
    v = results["throughput"]["voxswitch"] = voxswitch_throughput(tmp, args.calls, args.concurrency)
    print(
        f"  {v['completed']} completed, {v['failed']} failed in {v['seconds']:.1f} s: {v['per_minute']:.0f} calls/min"
        f" ({v['rtp_packets_at_trunk']} RTP packets reached the trunk; load {v['load_average']})",
        flush=True,
    )
    results["load_average_end"] = load_average()
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    (args.out / f"voice_api-{stamp}.json").write_text(json.dumps(results, indent=2))
    if args.chart is not None:
        chart(results, args.chart)
        print(f"chart: {args.chart}")
    print(f"load average at end: {results['load_average_end']}")


if __name__ == "__main__":
    main()

"""Media capacity: how many bridged G.711 calls one relay process on one core holds (issue #4).

SIPp places calls (UAC) through the server under test to a SIPp that answers them (UAS); from the
answer to the BYE each side sends G.711 A-law RTP (rtp_stream, 50 packets/s of 172 bytes), so every
call is 100 packets/s through the relay. The number of concurrent calls is ramped level by level; at
each level, once every call is up, tcpdump records on `lo` the packets entering and leaving the
relay for `--hold` seconds, and `rtp_capture.py` matches them (SSRC + sequence number: the relay
forwards them untouched) into loss and added delay per direction. A level passes with under 0.5 %
loss and a p99 added jitter under 10 ms in both directions, every call up and the capture complete.

Servers, each pinned to core 0 in turn, the load generators and tcpdump on core 1:
- voxswitch: `voxswitch serve` (SIP and RTP in one uvloop process), the calls bridged to the callee
  SIPp (through the trunk, or to a registered device until trunk calls exist: `--voxswitch-route`);
- rtpengine: Debian's rtpengine-daemon, userspace forwarding only (`--table=-1`), one worker thread,
  driven by Kamailio (rtpengine_offer/answer/delete) as the SIP proxy in front of it.

    .venv/bin/python benchmarks/media_capacity/run.py                 # both servers, ~15 min
    .venv/bin/python benchmarks/media_capacity/run.py --levels 100,300 --hold 10 --servers voxswitch

Writes results.json, results.md and chart.png (and py-spy profiles with --profile) into --out
(default: results/ next to this file). See README.md here and docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.harness import proc  # noqa: E402
from benchmarks.harness.machine import machine  # noqa: E402
from benchmarks.harness.profiling import finish_py_spy, profile_text, start_py_spy, summarise_profile  # noqa: E402
from benchmarks.harness.report import (  # noqa: E402
    add_core_options,
    finish_run,
    load_line,
    markdown_table,
    resolve_cores,
    save_figure,
)
from benchmarks.harness.servers import LOOPBACK, Kamailio, Server, Voxswitch, say, wait_until  # noqa: E402
from benchmarks.media_capacity.rtp_capture import (  # noqa: E402
    Capture,
    CaptureStats,
    DirectionReport,
    alaw_from_pcap,
    read_rtp,
    relay_report,
)
from tests.peers import ports  # noqa: E402
from tests.peers.sipp import G711A_PCAP, SippConfig, SippProcess, parse_stats  # noqa: E402

SERVERS = ("voxswitch", "rtpengine")
DIALLED = "4930555000"  # a number that is no app and no device: Voxswitch sends it to the trunk
DEVICE = "benchcallee"  # with --voxswitch-route device: the callee SIPp registers as this device
PACKETS_PER_CALL = 100  # 50/s each way, 20 ms G.711
MAX_LOSS = 0.005
MAX_JITTER_MS = 10.0


def _sipp_buffer() -> int:
    try:
        rmem = int(Path("/proc/sys/net/core/rmem_max").read_text())
    except (OSError, ValueError):
        rmem = 212_992
    return max(65_535, min(rmem, 8 * 1024 * 1024))


# ------------------------------------------------------------------------------------------------
# The relays


class Rtpengine(Server):
    """rtpengine-daemon in the foreground, userspace forwarding only, on one worker thread."""

    name = "rtpengine"

    def __init__(self, workdir: Path, cpu: str | None, port_min: int, port_max: int, threads: int) -> None:
        super().__init__(workdir, cpu)
        ports.release(self.sip_port)  # it speaks no SIP; its control port is `ng_port`
        self.ng_port = ports.free_udp_port(LOOPBACK)
        self.port_min, self.port_max, self.threads = port_min, port_max, threads
        # Its own way to SCHED_FIFO: the worker threads only (under chrt, its housekeeping threads
        # ran FIFO as well, and forwarding stalled for seconds at 22 % CPU).
        self.fifo: int | None = None

    def version(self) -> str:
        out = subprocess.run(["rtpengine", "--version"], capture_output=True, text=True, timeout=10)
        return (out.stdout + out.stderr).strip().removeprefix("Version: ") or "?"

    def argv(self) -> list[str]:
        return [
            "rtpengine",
            "--config-file=none",  # not /etc/rtpengine/rtpengine.conf
            "--foreground",
            "--log-stderr",
            "--log-level=4",  # warnings: no line per call
            "--table=-1",  # no kernel forwarding: every packet through the daemon
            f"--interface={LOOPBACK}",
            f"--listen-ng={LOOPBACK}:{self.ng_port}",
            f"--port-min={self.port_min}",
            f"--port-max={self.port_max}",
            f"--num-threads={self.threads}",
            *(["--scheduling=fifo", f"--priority={self.fifo}"] if self.fifo else []),
            "--delete-delay=0",  # free a call's ports at its BYE, as Voxswitch does
            "--timeout=60",
        ]

    def ping(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.3)
            s.sendto(b"bench d7:command4:pinge", (LOOPBACK, self.ng_port))
            try:
                return b"pong" in s.recv(1000)
            except TimeoutError:
                return False

    def start(self) -> None:
        self.spawn(self.argv())
        wait_until(self.ping, 20, "rtpengine ng", self.alive)

    def stop(self) -> None:
        super().stop()
        ports.release(self.ng_port)


@dataclass
class Relay:
    """What the callers dial and what relays their media: one process (Voxswitch), or Kamailio
    for the SIP and rtpengine for the media."""

    name: str
    sip: Server
    media: Server
    port_min: int
    port_max: int
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def processes(self) -> list[Server]:
        return [self.sip] if self.sip is self.media else [self.media, self.sip]

    def start(self) -> None:
        for p in reversed(self.processes):  # rtpengine before the proxy that calls it
            p.start()

    def stop(self) -> None:
        for p in self.processes:
            p.stop()
        ports.release(*range(self.port_min, self.port_max + 1))

    def alive(self) -> bool:
        return all(p.alive() for p in self.processes)

    def cpu_ticks(self) -> dict[str, int]:
        return {p.name: p.cpu_ticks() for p in self.processes}

    def pids(self) -> list[int]:
        return [pid for p in self.processes for pid in p.pids()]


def rtp_range(size: int) -> tuple[int, int]:
    """Free consecutive ports for a relay; on a busy machine a smaller range (4 ports a call)."""
    for want in (size, size * 4 // 5, size * 3 // 5):
        try:
            base = ports.free_rtp_range(want)
        except RuntimeError:
            continue
        return base, base + want - 1
    raise RuntimeError(f"no {size * 3 // 5} consecutive free UDP ports for the relay")


def voxswitch_relay(args: argparse.Namespace, workdir: Path, callee_port: int) -> Relay:
    lo, hi = rtp_range(args.rtp_ports)
    env = {
        "VOXSWITCH_RTP_PORT_MIN": str(lo),
        "VOXSWITCH_RTP_PORT_MAX": str(hi),
        "VOXSWITCH_SIP_TRUSTED_SOURCES": f'["{LOOPBACK}"]',
        "VOXSWITCH_SIP_DIGEST_ALGORITHMS": '["MD5"]',  # SIPp 3.6 knows only MD5 (device route)
    }
    if args.voxswitch_route == "trunk":
        env |= {"SIP_TRUNK_IP": LOOPBACK, "SIP_TRUNK_PORT": str(callee_port)}
    env |= dict(item.split("=", 1) for item in args.voxswitch_env)
    devices = [(DEVICE, "secret-callee")] if args.voxswitch_route == "device" else []
    server = Voxswitch(workdir, args.server_cpu, devices=devices, env=env, command=args.voxswitch_cmd)
    server.realtime = args.realtime or None
    return Relay("voxswitch", server, server, lo, hi, {"voxswitch": server.version()})


def rtpengine_relay(args: argparse.Namespace, workdir: Path, callee_port: int) -> Relay:
    lo, hi = rtp_range(args.rtp_ports)
    engine = Rtpengine(workdir, args.server_cpu, lo, hi, args.rtpengine_threads)
    values = {"ng_port": str(engine.ng_port), "callee": f"{LOOPBACK}:{callee_port}"}
    proxy = Kamailio(workdir, args.server_cpu, HERE / "kamailio.cfg.template", values)
    engine.fifo = proxy.realtime = args.realtime or None
    return Relay("rtpengine", proxy, engine, lo, hi, {"rtpengine": engine.version(), "kamailio": proxy.version()})


# ------------------------------------------------------------------------------------------------
# One level


@dataclass
class Level:
    server: str
    calls: int
    kind: str = "ladder"  # ladder | profile
    calls_up: int = 0  # calls SIPp had up when the window opened
    successful: int = 0
    failed: int = 0
    forward: DirectionReport = field(default_factory=DirectionReport)  # caller -> callee
    backward: DirectionReport = field(default_factory=DirectionReport)  # callee -> caller
    capture: CaptureStats = field(default_factory=CaptureStats)
    window: float = 0.0
    window_start: float = 0.0  # wall clock (time.time()) when the capture began
    packets_per_second: float = 0.0  # entering the relay, both directions
    cpu: dict[str, float] = field(default_factory=dict)  # per server process, share of one core
    server_core_busy: float | None = None
    other_on_server_core: float | None = None
    steal_on_server_core: float | None = None  # the hypervisor's: time this vCPU did not run at all
    load_cpu: float = 0.0  # both SIPps, share of one core
    server_socket_drops: int = 0
    rcvbuf_errors: int = 0  # the whole machine's (SIPp's own unread media sockets included)
    backlog_drops: int = 0
    passed: bool = False
    reason: str = ""
    attempt: int = 1

    @property
    def may_retry(self) -> bool:
        """A failure that another try may not repeat: the relay had CPU to spare, so a stall from
        other work on this shared machine is as likely a cause as the relay itself."""
        return not self.passed and self.server_cpu < 0.85 and "load short" not in self.reason

    @property
    def server_cpu(self) -> float:
        return sum(self.cpu.values())

    @property
    def loss(self) -> float:
        return max(self.forward.loss, self.backward.loss)

    @property
    def jitter_ms(self) -> float:
        return max(self.forward.added_jitter_p99_ms, self.backward.added_jitter_p99_ms)

    def line(self) -> str:
        verdict = "pass" if self.passed else f"FAIL ({self.reason})"
        cpu = " + ".join(f"{k} {v:.0%}" for k, v in self.cpu.items())
        other = f", others {self.other_on_server_core:.0%}" if self.other_on_server_core is not None else ""
        if self.steal_on_server_core:
            other += f", steal {self.steal_on_server_core:.0%}"
        return (
            f"{self.calls:>5} calls ({self.calls_up} up), {self.packets_per_second:>7,.0f} pkt/s in | loss "
            f"{self.forward.loss:.3%} / {self.backward.loss:.3%}, added jitter p99 "
            f"{self.forward.added_jitter_p99_ms:.2f} / {self.backward.added_jitter_p99_ms:.2f} ms "
            f"(max {max(self.forward.delay_max_ms, self.backward.delay_max_ms):.1f}) | CPU {cpu}{other}, "
            f"SIPp {self.load_cpu:.0%}  {verdict}"
        )


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.alaw = alaw_from_pcap(G711A_PCAP, workdir / "g711a.alaw")
        self.capture_dir = Path(tempfile.mkdtemp(prefix="voxswitch-media-", dir=args.capture_dir))
        self.levels: list[Level] = []
        self.runs = 0

    def _sipp(self, config: SippConfig, name: str) -> SippProcess:
        sipp = SippProcess(config, self.workdir / "sipp", name=name)
        if self.args.client_cpu is not None:
            sipp.argv = ["taskset", "-c", self.args.client_cpu, *sipp.argv]
        return sipp

    def callee(self, name: str) -> SippProcess:
        """The answering SIPp, one per server for the whole ladder."""
        config = SippConfig(
            scenario=HERE / "uas.xml",
            calls=None,
            template={"alaw_file": str(self.alaw)},
            trace_msg=False,
            extra_args=["-buff_size", str(_sipp_buffer()), "-rtp_buffsize", "1048576"],
        )
        return self._sipp(config, f"{name}_callee")

    def register_callee(self, relay: Relay, callee: SippProcess) -> None:
        """--voxswitch-route device: the callee's SIP port registers as a device (Voxswitch sends
        calls where a REGISTER came from), before the answering SIPp takes that port."""
        config = SippConfig(
            scenario=REPO / "tests/peers/scenarios/uac_register_digest.xml",
            target=f"{LOOPBACK}:{relay.sip.sip_port}",
            local_port=callee.port,
            service=DEVICE,
            auth_user=DEVICE,
            auth_password="secret-callee",
            keys={"expires": "3600"},
            trace_msg=False,
        )
        with self._sipp(config, f"{relay.name}_register") as reg:
            result = reg.wait(timeout=20)
        if not result.ok:
            raise RuntimeError("the callee could not register:\n" + result.describe())

    def run_level(self, relay: Relay, callee: SippProcess, calls: int, kind: str = "ladder") -> Level:
        args = self.args
        self.runs += 1
        level = Level(relay.name, calls, kind=kind)
        setup = calls / args.cps
        duration = setup + args.settle + args.hold + 3.0
        dialled = DEVICE if relay.name == "voxswitch" and args.voxswitch_route == "device" else DIALLED
        config = SippConfig(
            scenario=HERE / "uac.xml",
            target=f"{LOOPBACK}:{relay.sip.sip_port}",
            calls=calls,
            rate=args.cps,
            rate_period_ms=1000,
            limit=calls,
            service=dialled,
            template={"alaw_file": str(self.alaw)},
            call_duration_ms=int(duration * 1000),
            trace_msg=False,
            sipp_timeout_s=duration + setup + 60,
            extra_args=["-buff_size", str(_sipp_buffer()), "-rtp_buffsize", "1048576", "-max_recv_loops", "10000"],
        )
        caller = self._sipp(config, f"{self.runs:03d}_{relay.name}_{calls}")
        pcap = self.capture_dir / f"{self.runs:03d}_{relay.name}_{calls}.pcap"
        capture = Capture(pcap, relay.port_min, relay.port_max, args.client_cpu)
        core = f"cpu{args.server_cpu}" if args.server_cpu is not None else None
        spies = []
        with caller:
            time.sleep(setup + args.settle)
            level.calls_up = int(float(parse_stats(caller.files.stats).get("CurrentCall", 0) or 0))
            capture.start()
            level.window_start = time.time()
            load0 = proc.session_cpu_ticks(caller.proc.pid) + proc.session_cpu_ticks(callee.proc.pid)
            cpu0, busy0, t0 = relay.cpu_ticks(), proc.core_busy_ticks(), time.monotonic()
            steal0 = proc.core_steal_ticks()
            drops0, udp0, backlog0 = proc.udp_drops(relay.pids()), proc.udp_counters(), proc.softnet_dropped()
            if kind == "profile":
                stem = args.out / f"profile_{relay.name}_{calls}"
                spies = start_py_spy(
                    relay.media.pid, args.hold - 1, stem.with_suffix(".txt"), stem.with_suffix(".svg"),
                    cpu=args.client_cpu,
                )  # fmt: skip
            time.sleep(args.hold)
            cpu1, busy1, t1 = relay.cpu_ticks(), proc.core_busy_ticks(), time.monotonic()
            steal1 = proc.core_steal_ticks()
            drops1, udp1, backlog1 = proc.udp_drops(relay.pids()), proc.udp_counters(), proc.softnet_dropped()
            load1 = proc.session_cpu_ticks(caller.proc.pid) + proc.session_cpu_ticks(callee.proc.pid)
            level.capture = capture.stop()
            finish_py_spy(spies)
            result = caller.wait(timeout=duration + setup + 90)
        wall = t1 - t0
        level.window = wall
        level.cpu = {name: (cpu1[name] - cpu0[name]) / proc.TICKS / wall for name in cpu0}
        level.load_cpu = (load1 - load0) / proc.TICKS / wall
        if core is not None and core in busy0:
            level.server_core_busy = (busy1[core] - busy0[core]) / proc.TICKS / wall
            level.other_on_server_core = max(0.0, level.server_core_busy - level.server_cpu)
            level.steal_on_server_core = (steal1[core] - steal0[core]) / proc.TICKS / wall
        level.server_socket_drops = drops1 - drops0
        level.rcvbuf_errors = udp1.get("RcvbufErrors", 0) - udp0.get("RcvbufErrors", 0)
        level.backlog_drops = backlog1 - backlog0
        level.successful, level.failed = result.successful, result.failed
        packets = read_rtp(pcap)
        level.forward, _ = relay_report(packets, caller.media_port, callee.media_port)
        level.backward, _ = relay_report(packets, callee.media_port, caller.media_port)
        span = float(packets.t[-1] - packets.t[0]) - 1.0 if packets.t.size else 0.0
        level.packets_per_second = (level.forward.packets_in + level.backward.packets_in) / span if span > 0 else 0.0
        if not args.keep:
            pcap.unlink(missing_ok=True)
        self.judge(level, relay)
        if kind == "ladder":
            self.levels.append(level)
        return level

    def judge(self, level: Level, relay: Relay) -> None:
        problems = []
        if level.calls_up < level.calls:
            problems.append(f"only {level.calls_up} calls up")
        if level.failed or level.successful < level.calls:
            problems.append(f"{level.failed} calls failed, {level.calls - level.successful} not completed")
        for label, d in (("caller->callee", level.forward), ("callee->caller", level.backward)):
            if d.streams < level.calls:
                problems.append(f"{label}: {d.streams} streams entering")
            if d.streams_relayed < d.streams:
                problems.append(f"{label}: {d.streams - d.streams_relayed} streams not relayed")
            if not d.loss <= MAX_LOSS:
                problems.append(f"{label}: loss {d.loss:.2%}")
            if not d.added_jitter_p99_ms < MAX_JITTER_MS:
                problems.append(f"{label}: jitter p99 {d.added_jitter_p99_ms:.1f} ms")
        offered = level.calls * PACKETS_PER_CALL
        if level.packets_per_second < 0.95 * offered:
            problems.append(
                f"load short: SIPp sent {level.packets_per_second / offered:.0%} of {offered:,} packets/s"
                " -- the load generators' limit, not the relay's"
            )
        gaps = level.forward.capture_gaps + level.backward.capture_gaps
        if not level.capture.complete or gaps:
            problems.append(
                f"capture incomplete (tcpdump dropped {level.capture.dropped_by_kernel}, {gaps} gaps on the way in)"
                " -- not the relay's loss"
            )
        if not relay.alive():
            problems.append("server died")
        level.passed = not problems
        level.reason = "; ".join(problems)

    def ladder(self, relay: Relay, callee: SippProcess) -> tuple[Level | None, Level | None]:
        """(highest passing level, lowest failing level above it)."""
        best: Level | None = None
        worst: Level | None = None

        def step(calls: int, note: str = "") -> bool:
            nonlocal best, worst
            for attempt in range(1, self.args.tries + 1):
                level = self.run_level(relay, callee, calls)
                level.attempt = attempt
                say(f"  [{relay.name}] {level.line()}{note}{f'  (try {attempt})' if attempt > 1 else ''}")
                time.sleep(self.args.settle)
                if level.passed or not level.may_retry:
                    break
            if level.passed:
                best = level
            else:
                worst = level
            return level.passed

        for calls in self.args.levels:
            if not step(calls):
                break
        for _ in range(self.args.refine):
            if best is None or worst is None:
                break
            calls = int(round((best.calls + worst.calls) / 2 / 50) * 50)
            if calls in (best.calls, worst.calls):
                break
            step(calls, "  (refining)")
        return best, worst


# ------------------------------------------------------------------------------------------------
# Report


def limit_of(best: Level | None, worst: Level | None, top: int) -> str:
    if worst is None:
        return f"not reached: every level up to {top} calls passed" if best else "no level ran"
    media = max(worst.cpu.values()) if worst.cpu else 0.0
    if "capture incomplete" in worst.reason or "load short" in worst.reason:
        return f"the measurement at {worst.calls} calls: {worst.reason}"
    if (worst.steal_on_server_core or 0) >= 0.02:
        return (
            f"at {worst.calls} calls, the hypervisor took {worst.steal_on_server_core:.0%} of the relay's core "
            f"(steal; relay CPU {media:.0%}): {worst.reason}"
        )
    if media >= 0.85:
        return f"the relay's CPU ({media:.0%} of its core) at {worst.calls} calls: {worst.reason}"
    per_packet = worst.server_cpu / worst.packets_per_second if worst.packets_per_second else 0.0
    if "jitter" in worst.reason and per_packet:
        burst = 2 * worst.calls  # SIPp's streams send in the same millisecond, both sides
        return (
            f"working through SIPp's in-phase bursts at {worst.calls} calls: {burst} packets every 20 ms at "
            f"{per_packet * 1e6:.1f} us of CPU each is {burst * per_packet * 1e3:.1f} ms (relay CPU {media:.0%}): "
            f"{worst.reason}"
        )
    if worst.load_cpu >= 0.9:
        return f"the load generators' core (SIPp {worst.load_cpu:.0%}) at {worst.calls} calls: {worst.reason}"
    return f"at {worst.calls} calls, relay CPU {media:.0%} (not saturated): {worst.reason}"


def table(results: dict[str, dict[str, object]]) -> str:
    header = (
        "server",
        "calls held",
        "pkt/s in",
        "loss (worst dir)",
        "added jitter p99",
        "relay CPU",
        "CPU per relayed packet",
    )
    rows = [header]
    for name in SERVERS:
        r = results.get(name)
        if r is None:
            continue
        b: Level | None = r["best"]  # type: ignore[assignment]
        rows.append(
            (
                name,
                f"{b.calls}" if b else "-",
                f"{b.packets_per_second:,.0f}" if b else "-",
                f"{b.loss:.3%}" if b else "-",
                f"{b.jitter_ms:.2f} ms" if b else "-",
                f"{b.server_cpu:.0%}" if b else "-",
                f"{b.server_cpu / b.packets_per_second * 1e6:.1f} us" if b and b.packets_per_second else "-",
            )
        )
    return markdown_table(rows)


def chart(path: Path, levels: list[Level], info: dict[str, object]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    colours = {"voxswitch": "#1f77b4", "rtpengine": "#d62728"}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    panels = (
        (axes[0], lambda lv: lv.loss * 100, "loss, worse direction (%)", MAX_LOSS * 100),
        (axes[1], lambda lv: lv.jitter_ms, "added jitter p99, worse direction (ms)", MAX_JITTER_MS),
        (axes[2], lambda lv: lv.server_cpu * 100, "relay CPU (% of one core)", 100),
    )
    for ax, value, label, limit in panels:
        for server in SERVERS:
            pts = sorted((lv for lv in levels if lv.server == server), key=lambda lv: lv.calls)
            if not pts:
                continue
            ax.plot([p.calls for p in pts], [value(p) for p in pts], "-o", color=colours[server], label=server)
            bad = [p for p in pts if not p.passed]
            ax.scatter([p.calls for p in bad], [value(p) for p in bad], marker="x", s=90, color="black", zorder=3)
        ax.axhline(limit, ls=":", color="grey", label="limit" if limit != 100 else "one core")
        ax.axvline(500, ls="--", color="#2ca02c", lw=0.8, label="target: 500 calls")
        ax.set_xlabel("concurrent calls (100 packets/s each through the relay)")
        ax.set_ylabel(label)
        if "loss" in label or "jitter" in label:
            ax.set_yscale("symlog", linthresh=0.1 if "loss" in label else 1)
        ax.legend(fontsize=7)
    save_figure(fig, path, f"Bridged G.711 calls on one core (x: failed level) -- {info['cpu_model']}, {info['date']}")
    return True


# ------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default=",".join(SERVERS), help="comma-separated: voxswitch,rtpengine")
    p.add_argument("--levels", default="100,200,300,400,500,600,700,800,1000", help="concurrent calls per level")
    p.add_argument("--hold", type=float, default=20.0, help="seconds measured at each level (default 20)")
    p.add_argument("--settle", type=float, default=3.0, help="seconds after the last call is up (default 3)")
    p.add_argument("--cps", type=float, default=50.0, help="call setup rate while a level builds (default 50)")
    p.add_argument(
        "--tries",
        type=int,
        default=2,
        help="runs of a level that failed with CPU to spare before it counts as failed (default 2)",
    )
    p.add_argument("--refine", type=int, default=1, help="bisections between the last pass and first fail (1)")
    p.add_argument("--rtp-ports", type=int, default=5_000, help="size of each relay's RTP port range")
    p.add_argument("--rtpengine-threads", type=int, default=1, help="rtpengine --num-threads (default 1)")
    p.add_argument(
        "--voxswitch-route",
        choices=("trunk", "device"),
        default="trunk",
        help="how Voxswitch reaches the callee: the SIP trunk (default), or the callee registered as a device",
    )
    p.add_argument("--voxswitch-env", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--voxswitch-cmd", default=None, metavar="COMMAND", help="run Voxswitch with this command line")
    p.add_argument(
        "--profile", action="store_true", help="py-spy Voxswitch for one more level at its first failing one"
    )
    p.add_argument("--profile-calls", type=int, default=None, help="... or at this many calls")
    p.add_argument(
        "--realtime",
        type=int,
        default=1,
        metavar="PRIO",
        help="run the relays SCHED_FIFO at this priority (default 1; 0: the normal scheduler), so that other "
        "work on a shared machine cannot take their core while they have packets to relay",
    )
    add_core_options(p, "SIPp, tcpdump and py-spy")
    p.add_argument("--capture-dir", default="/dev/shm", help="where captures are written (tmpfs: no disk I/O)")
    p.add_argument("--out", type=Path, default=HERE / "results", help="where results go (default: results/ here)")
    p.add_argument("--keep", action="store_true", help="keep the work directory and the captures")
    args = p.parse_args(argv)
    resolve_cores(args)
    args.levels = sorted(int(x) for x in args.levels.split(",") if x)
    args.servers = [s for s in args.servers.split(",") if s]
    for s in args.servers:
        if s not in SERVERS:
            p.error(f"unknown server {s!r}")
    if not Path(args.capture_dir).is_dir():
        args.capture_dir = None
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    needed = {"sipp": "sip-tester", "taskset": "util-linux", "tcpdump": "tcpdump"}
    if "rtpengine" in args.servers:
        needed |= {"kamailio": "kamailio", "rtpengine": "rtpengine-daemon"}
    for tool, package in needed.items():
        if shutil.which(tool) is None:
            say(f"{tool} is not installed (apt-get install -y {package}; or: bash scripts/setup bench)")
            return 2
    info = machine()
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="voxswitch-bench-media-"))
    bench = Bench(args, workdir)
    say(
        f"Media capacity -- {info['date']}, {info['nproc']} x {info['cpu_model']}, load average "
        f"{' '.join(f'{x:.2f}' for x in info['loadavg_start'])}; relays on core {args.server_cpu}, SIPp and "
        f"tcpdump on core {args.client_cpu}; levels {args.levels}, {args.hold:g} s each; work directory {workdir}"
    )
    results: dict[str, dict[str, object]] = {}
    versions: dict[str, str] = {}
    profile: dict[str, object] | None = None
    started = time.monotonic()
    try:
        for name in args.servers:
            callee = bench.callee(name)
            make = voxswitch_relay if name == "voxswitch" else rtpengine_relay
            relay = make(args, workdir, callee.port)
            versions |= relay.versions
            say(f"\n== {name} ({', '.join(f'{k} {v}' for k, v in relay.versions.items())}), RTP ports "
                f"{relay.port_min}-{relay.port_max}")  # fmt: skip
            try:
                relay.start()
                if name == "voxswitch" and args.voxswitch_route == "device":
                    bench.register_callee(relay, callee)
                with callee:
                    best, worst = bench.ladder(relay, callee)
                    results[name] = {"best": best, "worst": worst, "limit": limit_of(best, worst, args.levels[-1])}
                    say(f"  [{name}] held {best.calls if best else 0} calls; limit: {results[name]['limit']}")
                    at = args.profile_calls or (worst.calls if worst else None)
                    if name == "voxswitch" and (args.profile or args.profile_calls) and at:
                        level = bench.run_level(relay, callee, at, kind="profile")
                        say(f"  [{name}] under py-spy: {level.line()}")
                        raw = args.out / f"profile_{name}_{at}.txt"
                        if raw.exists():
                            profile = summarise_profile(raw) | {"calls": at, "level": dataclasses.asdict(level)}
                            text = profile_text(profile, f"Voxswitch relaying {at} calls")
                            (args.out / f"profile_{name}_{at}_top.txt").write_text(text + "\n")
                            say(text)
            except Exception:
                for p in relay.processes:
                    say(f"  {p.name} log tail:\n{p.log_tail()}")
                raise
            finally:
                relay.stop()
                say(f"  {name} stopped")
    finally:
        if not args.keep:
            shutil.rmtree(bench.capture_dir, ignore_errors=True)
            shutil.rmtree(workdir, ignore_errors=True)
    finish_run(info, [lv.other_on_server_core for lv in bench.levels], started, time.monotonic())
    info["versions"] = versions
    text_table = table(results)
    limits = "\n".join(f"- {name}: {r['limit']}" for name, r in results.items())
    say("\n" + text_table + "\n\nWhat limited each:\n" + limits)
    say("\n" + load_line(info, "relays'"))

    def level_dict(lv: Level | None) -> dict[str, object] | None:
        return None if lv is None else dataclasses.asdict(lv) | {"loss": lv.loss, "jitter_ms": lv.jitter_ms}

    report = {
        "machine": info,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "results": {
            n: {"best": level_dict(r["best"]), "worst": level_dict(r["worst"]), "limit": r["limit"]}  # type: ignore[arg-type]
            for n, r in results.items()
        },
        "levels": [level_dict(lv) for lv in bench.levels],
        "profile": profile,
    }
    (args.out / "results.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    steps = "\n".join(f"- {lv.server}: {lv.line()}" for lv in bench.levels)
    (args.out / "results.md").write_text(
        f"# Media capacity: Voxswitch vs rtpengine ({info['date']})\n\n"
        f"{info['nproc']} x {info['cpu_model']}, kernel {info['kernel']}; {versions}; SIPp {info['sipp']}\n\n"
        f"{text_table}\n\nLimits:\n{limits}\n\nLevels:\n{steps}\n"
    )
    drawn = chart(args.out / "chart.png", bench.levels, info)
    say(
        f"\nwrote {args.out / 'results.json'}, {args.out / 'results.md'}"
        + (f", {args.out / 'chart.png'}" if drawn else "")
    )
    return 0 if all(r["best"] is not None for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

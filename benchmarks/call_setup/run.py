"""Call setup rate through a B2BUA: Voxswitch beside sippy's B2BUA, measured in the same run (issue #4).

SIPp's UAC places calls (INVITE, 180, 200, ACK, a short hold, BYE) to the B2BUA under test, which
places each one again towards a SIPp UAS (the "trunk") and passes ringing, answer and BYE between
the two. Each B2BUA runs pinned to one core, both SIPps on the other. For each the offered rate is
doubled step by step until a step is not clean, then bisected; a step is clean when every call
succeeded at both ends, nothing was retransmitted, no stray message arrived and SIPp achieved at
least 95 % of the offered rate. Then, at one moderate rate for both, the time from INVITE to 200
(and to 180) at the caller, per call.

    .venv/bin/python benchmarks/call_setup/run.py            # the full benchmark, ~10 min
    .venv/bin/python benchmarks/call_setup/run.py --quick    # 5 s steps, a rough look

It prints progress and a table, and writes results.json, results.md, chart.png and py-spy profiles
of both B2BUAs into --out (default: results/ next to this file). See README.md here and
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.harness import options  # noqa: E402
from benchmarks.harness.charts import best_rate_bars, offered_vs_achieved, pyplot  # noqa: E402
from benchmarks.harness.machine import machine  # noqa: E402
from benchmarks.harness.profiling import finish_py_spy, profile_text, start_py_spy, summarise_profile  # noqa: E402
from benchmarks.harness.report import finish_run, load_line, markdown_table, save_figure  # noqa: E402
from benchmarks.harness.servers import (  # noqa: E402
    LOOPBACK,
    VENV_BIN,
    Server,
    Voxswitch,
    exit_on_sigterm,
    missing_tools,
    running,
    say,
    sip_options_status,
    wait_until,
)
from benchmarks.harness.steps import (  # noqa: E402
    SIPP_BUFFER,
    Judging,
    Step,
    fmt_rate,
    ladder,
    limit_of,
    pin,
    run_step,
    wait_idle,
)
from tests.peers import ports  # noqa: E402
from tests.peers.sipp import SippConfig, SippProcess  # noqa: E402

UAC = HERE / "uac_call.xml"
UAS = HERE / "uas_answer.xml"
SCENARIO = "call"
#: The dialled number: neither an app nor a device, so Voxswitch places it out through the trunk.
NUMBER = "15550100"
SERVERS = ("voxswitch", "sippy")
COLOURS = {"voxswitch": "#1f77b4", "sippy": "#2ca02c"}


# ------------------------------------------------------------------------------------------------
# The B2BUAs: both send every call on to the UAS at 127.0.0.1:<uas_port>


class VoxswitchB2BUA(Voxswitch):
    """Voxswitch with SIPp's UAS as its trunk and 127.0.0.1 trusted (no digest on the caller's INVITE)."""

    def __init__(self, workdir: Path, cpu: str | None, uas_port: int, extra_env: dict[str, str], command: str | None):
        env = {
            "SIP_TRUNK_IP": LOOPBACK,
            "SIP_TRUNK_PORT": str(uas_port),
            "VOXSWITCH_SIP_TRUSTED_SOURCES": f'["{LOOPBACK}"]',
            **extra_env,
        }
        super().__init__(workdir, cpu, env=env, command=command)


class Sippy(Server):
    """sippy's B2BUA (`b2bua_radius`, the full one) with RADIUS off and a static route to the UAS.

    No RTPproxy: sippy passes the SDP through untouched and relays no media, so it does less per
    call than Voxswitch, which opens two RTP endpoints and relays between them.
    """

    name = "sippy"

    def __init__(self, workdir: Path, cpu: str | None, uas_port: int) -> None:
        super().__init__(workdir, cpu)
        self.uas_port = uas_port

    def version(self) -> str:
        from importlib.metadata import version

        return version("sippy")

    def start(self) -> None:
        b2bua = shutil.which("b2bua_radius", path=str(VENV_BIN))
        if b2bua is None:
            raise RuntimeError("sippy is not installed: bash scripts/setup bench")
        argv = [
            b2bua,
            "-f",  # foreground: stays in our session
            f"--sip_address={LOOPBACK}",
            f"--sip_port={self.sip_port}",
            "--auth_enable=off",
            "--acct_enable=off",
            f"--static_route={LOOPBACK}:{self.uas_port}",
            f"--b2bua_socket={self.workdir / 'b2bua.sock'}",
            f"--pidfile={self.workdir / 'b2bua.pid'}",
            f"--logfile={self.workdir / 'b2bua.log'}",
        ]
        # SIPLOG_LVL: sippy logs every SIP message at INFO, which would cost it more than the calls.
        self.spawn(argv, env={**os.environ, "SIPLOG_LVL": "WARN", "SIPLOG_BEND": "stderr"})
        # sippy answers OPTIONS 501 outside a dialog: any answer means it listens.
        wait_until(lambda: sip_options_status(self.sip_port) is not None, 20, "sippy SIP", self.alive)


# ------------------------------------------------------------------------------------------------
# Latency from the caller's message log


# SIPp -trace_msg: each message follows a line of dashes and a timestamp with microseconds, then
# "UDP message sent (515 bytes):" or "UDP message received [313] bytes :", a blank line, the message.
_STAMP = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)$", re.M)


def setup_times(message_log: Path) -> dict[str, list[float]]:
    """Per call, milliseconds from the INVITE sent to the first 180 and to the first 200 received,
    from SIPp's -trace_msg log (its timestamps have microseconds; -trace_rtt has milliseconds only)."""
    sent: dict[str, float] = {}
    ringing: dict[str, float] = {}
    answered: dict[str, float] = {}
    try:
        parts = _STAMP.split(message_log.read_text(errors="replace"))
    except OSError:
        parts = []
    for stamp, block in zip(parts[1::2], parts[2::2], strict=True):
        lines = block.strip("\n").split("\n")
        if len(lines) < 3:
            continue
        direction, first = lines[0].split(" ")[2], lines[2]
        call_id = cseq = ""
        for line in lines[3:]:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            if key in ("call-id", "i"):
                call_id = value.strip()
            elif key == "cseq":
                cseq = value.strip()
            elif not line.strip():
                break  # the body
        if not call_id or not cseq.endswith("INVITE"):
            continue
        t = dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()
        if direction == "sent" and first.startswith("INVITE "):
            sent.setdefault(call_id, t)
        elif direction == "received" and first.startswith("SIP/2.0 180"):
            ringing.setdefault(call_id, t)
        elif direction == "received" and first.startswith("SIP/2.0 200"):
            answered.setdefault(call_id, t)
    return {
        "180": [(ringing[c] - t0) * 1000 for c, t0 in sent.items() if c in ringing],
        "200": [(answered[c] - t0) * 1000 for c, t0 in sent.items() if c in answered],
    }


def percentiles(values: Sequence[float]) -> dict[str, float] | None:
    if len(values) < 2:
        return None
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "calls": len(values),
        "mean": statistics.fmean(values),
        "p50": q[49],
        "p90": q[89],
        "p99": q[98],
        "max": max(values),
    }


# ------------------------------------------------------------------------------------------------
# Steps


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path, uas_port: int) -> None:
        self.args = args
        self.workdir = workdir
        self.uas_port = uas_port
        self.judging = Judging(keep_up=args.keep_up, max_retransmissions=args.max_retransmissions)
        self.steps: list[Step] = []
        self.latencies: dict[str, dict[str, object]] = {}
        self.runs = 0

    @property
    def hold_s(self) -> float:
        return self.args.hold_ms / 1000

    def common_args(self) -> list[str]:
        # -max_*_retrans 2 and -recv_timeout: a call the B2BUA dropped fails within seconds rather
        # than after Timer B's 32 s, so a step past the limit ends soon.
        return [
            "-buff_size",
            str(SIPP_BUFFER),
            "-max_invite_retrans",
            "2",
            "-max_non_invite_retrans",
            "2",
            "-recv_timeout",
            str(int(self.hold_s * 1000 + 10_000)),
        ]

    def uas(self, name: str) -> SippProcess:
        config = SippConfig(
            scenario=UAS,
            local_port=self.uas_port,
            calls=None,
            trace_msg=False,
            trace_err=True,
            extra_args=self.common_args(),
        )
        return pin(SippProcess(config, self.workdir / "sipp", name=f"{name}_uas"), self.args.client_cpu)

    def uac(self, server: Server, name: str, rate: float, calls: int, seconds: float, trace: bool) -> SippProcess:
        config = SippConfig(
            scenario=UAC,
            target=f"{LOOPBACK}:{server.sip_port}",
            service=NUMBER,
            calls=calls,
            rate=rate,
            rate_period_ms=1000,
            # At most a hold and a second's worth of calls up at once: a B2BUA that falls behind shows it.
            limit=max(50, int(rate * (self.hold_s + 1.0))),
            call_duration_ms=self.args.hold_ms,
            trace_msg=trace,
            trace_err=True,
            sipp_timeout_s=seconds * 3 + self.hold_s + 20,
            extra_args=self.common_args(),
        )
        return pin(SippProcess(config, self.workdir / "sipp", name=f"{name}_uac"), self.args.client_cpu)

    def run_step(
        self,
        server: Server,
        rate: float,
        seconds: float | None = None,
        kind: str = "ladder",
        during: Callable[[], None] | None = None,
    ) -> Step:
        seconds = seconds or self.args.step_seconds
        calls = max(int(rate * seconds), 10)
        self.runs += 1
        name = f"{self.runs:03d}_{server.name}_{rate:g}"
        uac = self.uac(server, name, rate, calls, seconds, trace=kind == "latency")
        step = Step(server.name, SCENARIO, rate, calls, kind=kind)
        result = run_step(
            step,
            uac,
            server,
            self.judging,
            server_cpu=self.args.server_cpu,
            timeout=seconds * 3 + self.hold_s + 40,
            uas=self.uas(name),
            during=during,
            hold_s=self.hold_s,
        )
        self.steps.append(step)
        if kind == "latency":
            times = setup_times(result.files.messages)
            self.latencies[server.name] = {
                "rate": rate,
                "step": dataclasses.asdict(step),
                "invite_to_200_ms": percentiles(times["200"]),
                "invite_to_180_ms": percentiles(times["180"]),
                "invite_to_200_all_ms": times["200"],
                "sipp_response_time_1_mean_ms": step.response_ms,
            }
        if not server.alive():
            raise RuntimeError(f"{server.name} died during a step:\n{server.log_tail()}")
        return step

    def settle(self, step: Step, server: Server) -> None:
        """Let the B2BUA finish what a step left before the next: after an unclean step it may still
        be working through a backlog and then end half-set-up calls with a BYE, which would reach
        the next step's UAS as calls it never saw."""
        time.sleep(1.0)
        if not step.passed:
            # Quiet for 3 s at under 2 % of a core: a starved B2BUA can look idle for a second.
            wait_idle(server, below=0.02, quiet_s=3.0, timeout=45.0)
            time.sleep(2.0)

    def warm_up(self, server: Server) -> None:
        step = self.run_step(server, 10.0, seconds=2.0, kind="warmup")
        say(f"  [{server.name}] warm-up (not judged): {step.line()}")
        self.settle(step, server)

    def ladder(self, server: Server) -> tuple[Step | None, Step | None]:
        args = self.args
        return ladder(
            lambda rate: self.run_step(server, rate),
            lambda step: self.settle(step, server),
            start_rate=args.start_rate,
            factor=args.factor,
            max_rate=args.max_rate,
            refine=args.refine,
            busy_share=args.busy_share,
            busy_retries=args.busy_retries,
            tag=f"  [{server.name}]",
            min_rate=2.0,
        )

    def latency(self, server: Server) -> None:
        rate = self.args.latency_rate
        step = self.run_step(server, rate, seconds=self.args.latency_seconds, kind="latency")
        lat = self.latencies[server.name]
        say(f"  [{server.name}] latency step: {step.line()}")
        say(f"  [{server.name}] INVITE->200 at {rate:g}/s: {fmt_latency(lat['invite_to_200_ms'])}")  # type: ignore[arg-type]
        say(f"  [{server.name}] INVITE->180 at {rate:g}/s: {fmt_latency(lat['invite_to_180_ms'])}")  # type: ignore[arg-type]
        self.settle(step, server)

    def profile(self, server: Server, rate: float, out: Path) -> dict[str, object] | None:
        """py-spy on the B2BUA (both are Python) while SIPp offers ``rate``."""
        seconds = self.args.profile_seconds

        stem = out / f"profile_{server.name}"
        raw = stem.with_suffix(".txt")
        spies: list[subprocess.Popen[bytes]] = []

        def attach() -> None:
            time.sleep(0.5)  # into the steady state
            spies.extend(start_py_spy(server.pid, seconds, raw, stem.with_suffix(".svg"), cpu=self.args.client_cpu))

        step = self.run_step(server, rate, seconds=seconds + 1.5, kind="profile", during=attach)
        say(f"  [{server.name}] under py-spy: {step.line()}")
        finish_py_spy(spies)
        self.settle(step, server)
        if not spies or not raw.exists():
            say("  no profile (is py-spy installed, does this kernel allow ptrace?)")
            return None
        summary = summarise_profile(raw)
        summary["rate"] = rate
        summary["step"] = dataclasses.asdict(step)
        title = f"{server.name} under call setup load at {rate:g}/s"
        (out / f"profile_{server.name}_top.txt").write_text(profile_text(summary, title) + "\n")
        return summary


def other_load(steps: Sequence[Step]) -> float | None:
    """Mean share of the B2BUA's core that others took during the ladder steps (retried ones too)."""
    seen = [s.other_on_server_core for s in steps if s.kind in ("ladder", "busy")]
    known = [x for x in seen if x is not None]
    return sum(known) / len(known) if known else None


def ladder_record(best: Step | None, worst: Step | None, limit: str) -> dict[str, object]:
    return {
        "best": dataclasses.asdict(best) if best else None,
        "worst": dataclasses.asdict(worst) if worst else None,
        "limit": limit,
    }


# ------------------------------------------------------------------------------------------------
# Report


def fmt_latency(p: dict[str, float] | None) -> str:
    if not p:
        return "-"
    return f"p50 {p['p50']:.1f} ms, p90 {p['p90']:.1f}, p99 {p['p99']:.1f}, max {p['max']:.1f} ({p['calls']:.0f} calls)"


def table(results: dict[str, dict[str, object]], latencies: dict[str, dict[str, object]], steps: Sequence[Step]) -> str:
    """One row per B2BUA. CPU per call at the latency step (the same rate for both) compares their
    cost even when the machine's other load held a ladder down: it hardly depends on that load."""
    header = (
        "B2BUA",
        "highest clean cps",
        "vs sippy",
        "server CPU at that rate",
        "SIPp CPU",
        "others on its core",
        "CPU per call at the latency rate",
        "INVITE->200 p50 / p99",
    )
    rows = []
    peer = results.get("sippy", {}).get("best")
    for name, r in results.items():
        best: Step | None = r.get("best")  # type: ignore[assignment]
        lat = latencies.get(name) or {}
        setup = lat.get("invite_to_200_ms")
        at = lat.get("step") or {}
        cost = at["server_cpu"] / at["achieved"] * 1000 if at and at["achieved"] else None  # type: ignore[index]
        others = other_load([s for s in steps if s.server == name])
        ratio = f"{best.achieved / peer.achieved:.2f}" if best and isinstance(peer, Step) and peer.achieved else "-"
        rows.append(
            (
                name,
                fmt_rate(best),
                ratio,
                f"{best.server_cpu:.0%}" if best else "-",
                f"{best.client_cpu:.0%}" if best else "-",
                f"{others:.0%}" if others is not None else "-",
                f"{cost:.1f} ms" if cost is not None else "-",
                f"{setup['p50']:.1f} / {setup['p99']:.1f} ms" if isinstance(setup, dict) else "-",
            )
        )
    return markdown_table([header, *rows])


def chart(
    path: Path,
    steps: list[Step],
    results: dict[str, dict[str, object]],
    latencies: dict[str, dict[str, object]],
    info: dict[str, object],
) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    colours = {s: COLOURS[s] for s in results}
    fig, axes = plt.subplots(1, 3, figsize=(15.6, 4.6))
    best = {server: {SCENARIO: r.get("best")} for server, r in results.items()}
    best_rate_bars(axes[0], [SCENARIO], best, colours, "voxswitch", "sippy")  # type: ignore[arg-type]
    axes[0].set_xticks([0], ["call setup (INVITE ... BYE)"])
    offered_vs_achieved(axes[1], steps, SCENARIO, colours, "Offered vs achieved per step")
    ax = axes[2]
    for server, lat in latencies.items():
        values = sorted(lat.get("invite_to_200_all_ms") or [])  # type: ignore[type-var]
        if values:
            ys = [(i + 1) / len(values) for i in range(len(values))]
            ax.step(values, ys, where="post", color=COLOURS[server], label=f"{server} ({len(values)} calls)")
    rates = {lat["rate"] for lat in latencies.values()}
    ax.set_xscale("log")
    ax.set_xlabel("INVITE -> 200 at the caller (ms, log)")
    ax.set_ylabel("share of calls")
    ax.set_title(f"Call setup time at {', '.join(f'{r:g}' for r in sorted(rates))} calls/s")  # type: ignore[arg-type]
    ax.grid(alpha=0.3)
    if any(lat.get("invite_to_200_all_ms") for lat in latencies.values()):
        ax.legend(fontsize=8)
    title = f"Call setup through a B2BUA, one core each -- {info['cpu_model']}, {info['nproc']} CPUs, {info['date']}"
    save_figure(fig, path, title)
    return True


# ------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default=",".join(SERVERS), help="comma-separated: voxswitch,sippy")
    p.add_argument("--hold-ms", type=int, default=1000, help="how long each call stays up (default 1000)")
    p.add_argument("--latency-rate", type=float, default=50.0, help="rate of the latency step, both servers (50)")
    p.add_argument("--latency-seconds", type=float, default=20.0, help="length of the latency step (default 20)")
    options.add_ladder_options(p, HERE, step_seconds=10.0, start_rate=25.0, max_rate=3200.0)
    p.add_argument("--quick", action="store_true", help="5 s steps, 1 refinement, 10 s latency, 4 s profiles")
    args = p.parse_args(argv)
    if args.quick:
        args.step_seconds, args.refine, args.latency_seconds, args.profile_seconds = 5.0, 1, 10.0, 4.0
    return options.finish(p, args, SERVERS)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    if missing := missing_tools(["sipp", "taskset"]):
        say(missing)
        return 2
    info = machine()
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="voxswitch-bench-calls-"))
    uas_port = ports.free_sip_port(LOOPBACK)
    bench = Bench(args, workdir, uas_port)
    say(
        f"Call setup benchmark -- {info['date']}, {info['nproc']} x {info['cpu_model']}, "
        f"load average {' '.join(f'{x:.2f}' for x in info['loadavg_start'])}"
    )
    say(
        f"B2BUAs on core {args.server_cpu}, SIPp UAC and UAS (127.0.0.1:{uas_port}) on core {args.client_cpu}; "
        f"{args.step_seconds:g} s steps, calls held {args.hold_ms} ms; work directory {workdir}"
    )
    results: dict[str, dict[str, object]] = {}
    versions: dict[str, str] = {}
    profiles: dict[str, dict[str, object]] = {}
    started = time.monotonic()
    try:
        for name in args.servers:
            server: Server = (
                VoxswitchB2BUA(workdir, args.server_cpu, uas_port, args.voxswitch_env, args.voxswitch_cmd)
                if name == "voxswitch"
                else Sippy(workdir, args.server_cpu, uas_port)
            )
            versions[name] = server.version()
            with running(server):
                bench.warm_up(server)
                best, worst = bench.ladder(server)
                results[name] = {"best": best, "worst": worst, "limit": limit_of(best, worst, args.max_rate)}
                say(f"  [{name}] highest clean rate {fmt_rate(best)}/s; limit: {results[name]['limit']}")
                bench.latency(server)
                if args.profile and best is not None:
                    rate = max(10.0, round(best.achieved * 0.8, -1))
                    if (summary := bench.profile(server, rate, args.out)) is not None:
                        profiles[name] = summary
    finally:
        ports.release(uas_port)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    others = [s.other_on_server_core for s in bench.steps if s.kind in ("ladder", "busy")]
    finish_run(info, others, started, time.monotonic())
    info["versions"] = versions

    text_table = table(results, bench.latencies, bench.steps)
    limits = "\n".join(f"- {name}: {r['limit']}" for name, r in results.items())
    latency_lines = "\n".join(
        f"- {name} at {lat['rate']:g}/s: INVITE->200 {fmt_latency(lat['invite_to_200_ms'])}; "  # type: ignore[arg-type]
        f"INVITE->180 {fmt_latency(lat['invite_to_180_ms'])}"  # type: ignore[arg-type]
        for name, lat in bench.latencies.items()
    )
    say("\n" + text_table)
    say("\nWhat stopped each ladder (the first step that was not clean):\n" + limits)
    say("\nCall setup time at the caller (from SIPp's message log):\n" + latency_lines)
    load = load_line(info, "B2BUAs'")
    say("\n" + load)
    for name, summary in profiles.items():
        brief = {**summary, "self": summary["self"][:10], "inclusive": summary["inclusive"][:10]}  # type: ignore[index]
        say("\n" + profile_text(brief, f"{name} profile at {summary['rate']:g}/s"))

    record = {
        "machine": info,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "results": {name: ladder_record(r["best"], r["worst"], r["limit"]) for name, r in results.items()},  # type: ignore[arg-type]
        "latency": bench.latencies,
        "steps": [dataclasses.asdict(s) for s in bench.steps],
        "profiles": profiles,
    }
    (args.out / "results.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    steps_md = "\n".join(f"- {s.server} ({s.kind}): {s.line()}" for s in bench.steps)
    (args.out / "results.md").write_text(
        f"# Call setup through a B2BUA: Voxswitch vs sippy ({info['date']})\n\n"
        f"{info['nproc']} x {info['cpu_model']}, kernel {info['kernel']}; {versions}; SIPp {info['sipp']}; "
        f"calls held {args.hold_ms} ms\n\n{text_table}\n\nLimits:\n{limits}\n\nCall setup time:\n{latency_lines}\n\n"
        f"{load}\n\nSteps:\n{steps_md}\n"
    )
    drawn = chart(args.out / "chart.png", bench.steps, results, bench.latencies, info)
    say(
        f"\nwrote {args.out / 'results.json'}, {args.out / 'results.md'}"
        + (f", {args.out / 'chart.png'}" if drawn else " (no chart: matplotlib is not installed)")
        + "".join(f", {args.out / f'profile_{n}.svg'}" for n in profiles)
    )
    return 1 if any(r["best"] is None for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())

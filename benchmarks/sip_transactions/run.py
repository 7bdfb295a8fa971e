"""SIP transaction rates: Voxswitch beside Kamailio, measured in the same run (issue #3).

Two SIPp scenarios -- OPTIONS answered 200, and REGISTER with MD5 digest (401, then 200) over many
users -- run against Voxswitch (one process, pinned to one core) and against Kamailio (one UDP worker,
in-memory registrar, HA1s in an htable; pinned to the same core). For each pair the offered rate is
doubled step by step until a step is not clean, then bisected; a step is clean when every call
succeeded, nothing was retransmitted, no stray message arrived and SIPp achieved at least 95 % of
the offered rate. The highest clean step is the server's rate. SIPp runs on the other core.

    .venv/bin/python benchmarks/sip_transactions/run.py            # the full benchmark, ~5 min
    .venv/bin/python benchmarks/sip_transactions/run.py --quick    # 2 s steps, a rough look

It prints progress and a table, and writes results.json, results.md, chart.png and the py-spy
profile of Voxswitch under REGISTER load into --out (default: results/ next to this file).
See README.md here and docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.harness.charts import best_rate_bars, offered_vs_achieved, pyplot  # noqa: E402
from benchmarks.harness.machine import machine  # noqa: E402
from benchmarks.harness.options import add_ladder_options, finish  # noqa: E402
from benchmarks.harness.proc import TICKS  # noqa: E402
from benchmarks.harness.profiling import (  # noqa: E402
    finish_py_spy,
    profile_text,
    py_spy,
    start_py_spy,
    summarise_profile,
)
from benchmarks.harness.report import (  # noqa: E402
    finish_run,
    load_line,
    markdown_table,
    save_figure,
)
from benchmarks.harness.servers import LOOPBACK, Kamailio, Server, Voxswitch, say  # noqa: E402
from benchmarks.harness.steps import (  # noqa: E402
    SIPP_BUFFER,
    Judging,
    Step,
    fmt_rate,
    ladder,
    limit_of,
    pin,
    run_step,
)
from tests.peers import ports  # noqa: E402
from tests.peers.sipp import SippConfig, SippProcess  # noqa: E402

REALM = "voxswitch"
SCENARIOS = {"options": HERE / "options.xml", "register": HERE / "register_digest.xml"}
SERVERS = ("voxswitch", "kamailio")


def password_of(user: str) -> str:
    return f"secret-{user}"


def md5_ha1(user: str, realm: str, password: str) -> str:
    return hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()


# ------------------------------------------------------------------------------------------------
# The servers (benchmarks/harness/servers.py), with this benchmark's accounts

KAMAILIO_TEMPLATE = HERE / "kamailio.cfg.template"


def voxswitch_server(
    workdir: Path, users: Sequence[str], cpu: str | None, extra_env: dict[str, str], command: str | None
) -> Voxswitch:
    env = {
        "VOXSWITCH_SIP_REALM": REALM,
        # SIPp 3.6 answers only the first challenge and knows only MD5.
        "VOXSWITCH_SIP_DIGEST_ALGORITHMS": '["MD5"]',
        **extra_env,
    }
    return Voxswitch(workdir, cpu, devices=[(u, password_of(u)) for u in users], env=env, command=command)


def kamailio_server(workdir: Path, users: Sequence[str], cpu: str | None) -> Kamailio:
    """One UDP worker, in-memory registrar, the users' MD5 HA1s in an htable filled at start."""
    table = "\n".join(f'    $sht(users=>{u}) = "{md5_ha1(u, REALM, password_of(u))}";' for u in users)
    return Kamailio(workdir, cpu, KAMAILIO_TEMPLATE, {"realm": REALM, "users": table})


# ------------------------------------------------------------------------------------------------
# Steps


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path, users: list[str]) -> None:
        self.args = args
        self.workdir = workdir
        self.users = users
        self.users_csv = workdir / "users.csv"
        lines = ["SEQUENTIAL"] + [f"{u};[authentication username={u} password={password_of(u)}];" for u in users]
        self.users_csv.write_text("\n".join(lines) + "\n")
        self.steps: list[Step] = []
        self.runs = 0
        # Every SIPp run sends from the same port, so a REGISTER refreshes the binding its user already
        # has, as a phone does. (A new port per run made a new contact per run: after ten runs the
        # registrar's contact limit refused the eleventh, and each 200 listed every stale contact.)
        self.sipp_port = ports.free_sip_port(LOOPBACK)

    def sipp_config(self, server: Server, scenario: str, rate: float, calls: int, seconds: float) -> SippConfig:
        # -buff_size: SIPp's socket buffers default to 64 KB, which a burst of answers overflows at
        # high rates (retransmissions that are SIPp's, not the server's); take what the kernel allows.
        # -nd: an aborted REGISTER must not be followed by a BYE. -max_non_invite_retrans 2: an
        # unanswered request fails after 3.5 s rather than 32 s, so a step past the limit ends soon.
        extra = ["-nd", "-max_non_invite_retrans", "2", "-buff_size", str(SIPP_BUFFER)]
        keys: dict[str, str] = {}
        if scenario == "register":
            extra += ["-inf", str(self.users_csv)]
            keys["expires"] = "3600"
        return SippConfig(
            scenario=SCENARIOS[scenario],
            target=f"{LOOPBACK}:{server.sip_port}",
            local_port=self.sipp_port,
            calls=calls,
            rate=rate,
            rate_period_ms=1000,
            # At most a second's worth of calls in flight: a server that falls behind shows it.
            limit=max(200, int(rate)),
            keys=keys,
            service="bench" if scenario == "options" else None,
            trace_msg=False,
            trace_err=True,
            sipp_timeout_s=seconds * 3 + 15,
            extra_args=extra,
        )

    def run_step(
        self,
        server: Server,
        scenario: str,
        rate: float,
        seconds: float | None = None,
        kind: str = "ladder",
        during: Callable[[], None] | None = None,
    ) -> Step:
        seconds = seconds or self.args.step_seconds
        calls = max(int(rate * seconds), 20)
        self.runs += 1
        config = self.sipp_config(server, scenario, rate, calls, seconds)
        sipp = SippProcess(config, self.workdir / "sipp", name=f"{self.runs:03d}_{server.name}_{scenario}_{rate:g}")
        step = Step(server.name, scenario, rate, calls, kind=kind)
        run_step(
            step,
            pin(sipp, self.args.client_cpu),
            server,
            Judging(keep_up=self.args.keep_up, max_retransmissions=self.args.max_retransmissions),
            server_cpu=self.args.server_cpu,
            timeout=seconds * 3 + 30,
            during=during,
        )
        self.steps.append(step)
        if not server.alive():
            raise RuntimeError(f"{server.name} died during a step:\n{server.log_tail()}")
        return step

    def settle(self, step: Step) -> None:
        """Let the server drain what a step left (queued datagrams, retransmissions) before the next."""
        time.sleep(1.0 if step.passed else 4.0)

    def warm_up(self, server: Server, scenario: str) -> None:
        # Registers every user once (the steady state is re-registration), or wakes the OPTIONS path.
        rate = 200.0
        seconds = max(len(self.users) / rate, 1.0) if scenario == "register" else 1.0
        step = self.run_step(server, scenario, rate, seconds=seconds, kind="warmup")
        say(f"  [{server.name} {scenario}] warm-up (not judged): {step.line()}")
        self.settle(step)

    def ladder(self, server: Server, scenario: str) -> tuple[Step | None, Step | None]:
        """(highest clean step, lowest step that was not clean)."""
        args = self.args
        return ladder(
            lambda rate: self.run_step(server, scenario, rate),
            self.settle,
            start_rate=args.start_rate,
            factor=args.factor,
            max_rate=args.max_rate,
            refine=args.refine,
            tag=f"  [{server.name} {scenario}]",
            busy_share=args.busy_share,
            busy_retries=args.busy_retries,
        )


# ------------------------------------------------------------------------------------------------
# Profile


def run_profile(
    bench: Bench, server: Voxswitch, scenario: str, rate: float, out: Path, native: bool = False
) -> dict[str, object] | None:
    """Record Voxswitch with py-spy while SIPp offers ``rate``.

    The default is a CPU profile taken without stopping the process (``--nonblocking``): Python
    frames only, threads waiting in the kernel left out, so it shows where CPU goes. ``native``
    adds C frames and idle threads (``--native --idle``), which shows where time is *waited* (e.g.
    SQLite's busy handler) -- but py-spy must then pause the process for every sample, which slows
    it: that step's rates are not comparable with the others.
    """
    if py_spy() is None:
        say("  py-spy is not installed (.venv/bin/pip install py-spy): no profile")
        return None
    seconds = bench.args.profile_seconds
    stem = f"profile_{scenario}" + ("_native" if native else "")
    raw = out / f"{stem}.txt"
    spies: list[subprocess.Popen[bytes]] = []

    def attach() -> None:
        time.sleep(0.5)  # into the steady state
        svg = None if native else out / f"{stem}.svg"
        spies.extend(start_py_spy(server.pid, seconds, raw, svg, native=native, cpu=bench.args.client_cpu))

    step = bench.run_step(server, scenario, rate, seconds=seconds + 1.5, kind="profile", during=attach)
    say(f"  [{server.name} {scenario}] under py-spy{' --native' if native else ''}: {step.line()}")
    finish_py_spy(spies)
    if not raw.exists():
        say("  py-spy wrote no profile (does this kernel allow ptrace?)")
        return None
    summary = summarise_profile(raw)
    summary["rate"] = rate
    summary["native"] = native
    summary["step"] = dataclasses.asdict(step)
    title = f"Voxswitch under {scenario} load at {rate:g}/s" + (
        " (native frames, idle threads included)" if native else ""
    )
    (out / f"{stem}_top.txt").write_text(profile_text(summary, title) + "\n")
    return summary


# ------------------------------------------------------------------------------------------------
# Report


def table(results: dict[str, dict[str, dict[str, object]]], scenarios: Sequence[str]) -> str:
    header = (
        "scenario",
        "Voxswitch cps",
        "Kamailio cps",
        "ratio",
        "failures (V/K)",
        "CPU at that rate (V/K)",
        "cps per core-second (V/K)",
        "efficiency ratio",
    )
    rows = [header]
    for scenario in scenarios:
        v = results.get("voxswitch", {}).get(scenario, {})
        k = results.get("kamailio", {}).get(scenario, {})
        vb, kb = v.get("best"), k.get("best")
        ratio = f"{vb.achieved / kb.achieved:.3f}" if vb and kb and kb.achieved else "-"
        vpc = vb.achieved / vb.server_cpu if vb and vb.server_cpu > 0 else None
        kpc = kb.achieved / kb.server_cpu if kb and kb.server_cpu > 0 else None
        eff = f"{vpc / kpc:.3f}" if vpc and kpc else "-"
        rows.append(
            (
                scenario,
                fmt_rate(vb),
                fmt_rate(kb),
                ratio,
                f"{vb.failed if vb else '-'} / {kb.failed if kb else '-'}",
                f"{vb.server_cpu:.0%} / {kb.server_cpu:.0%}" if vb and kb else "-",
                f"{vpc:,.0f} / {kpc:,.0f}" if vpc and kpc else "-",
                eff,
            )
        )
    return markdown_table(rows)


def chart(
    path: Path,
    steps: list[Step],
    results: dict[str, dict[str, dict[str, object]]],
    scenarios: Sequence[str],
    info: dict[str, object],
) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    colours = {"voxswitch": "#1f77b4", "kamailio": "#d62728"}
    fig, axes = plt.subplots(1, 1 + len(scenarios), figsize=(5.2 * (1 + len(scenarios)), 4.6))
    best = {server: {s: r.get("best") for s, r in per.items()} for server, per in results.items()}
    best_rate_bars(axes[0], scenarios, best, colours, "voxswitch", "kamailio")  # type: ignore[arg-type]
    axes[0].set_yscale("log")
    axes[0].set_ylabel("highest clean rate (calls/s, log)")
    for ax, s in zip(axes[1:], scenarios, strict=True):
        offered_vs_achieved(ax, steps, s, colours, f"{s.upper()}: offered vs achieved per step")
    save_figure(
        fig, path, f"SIP transactions, one core each -- {info['cpu_model']}, {info['nproc']} CPUs, {info['date']}"
    )
    return True


# ------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default=",".join(SERVERS), help="comma-separated: voxswitch,kamailio")
    p.add_argument("--scenarios", default="options,register", help="comma-separated: options,register")
    p.add_argument("--users", type=int, default=100, help="SIP accounts registered round-robin (default 100)")
    add_ladder_options(p, HERE, step_seconds=5.0, start_rate=250.0, max_rate=64000.0)
    p.add_argument(
        "--profile-native",
        action="store_true",
        help="also record C frames and waiting threads (pauses Voxswitch per sample)",
    )
    p.add_argument("--quick", action="store_true", help="2 s steps, 1 refinement, 4 s profile: a rough look")
    args = p.parse_args(argv)
    if args.quick:
        args.step_seconds, args.refine, args.profile_seconds = 2.0, 1, 4.0
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    for s in args.scenarios:
        if s not in SCENARIOS:
            p.error(f"unknown scenario {s!r}")
    return finish(p, args, SERVERS)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("sipp", "taskset", *(["kamailio"] if "kamailio" in args.servers else [])):
        if shutil.which(tool) is None:
            say(f"{tool} is not installed (apt-get install -y {'sip-tester' if tool == 'sipp' else tool})")
            return 2
    info = machine()
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="voxswitch-bench-sip-"))
    users = [str(1001 + i) for i in range(args.users)]
    bench = Bench(args, workdir, users)
    say(
        f"SIP transaction benchmark -- {info['date']}, {info['nproc']} x {info['cpu_model']}, "
        f"load average {' '.join(f'{x:.2f}' for x in info['loadavg_start'])}"
    )
    say(
        f"servers on core {args.server_cpu}, SIPp on core {args.client_cpu}; {args.step_seconds:g} s steps; "
        f"{len(users)} users; work directory {workdir}"
    )
    results: dict[str, dict[str, dict[str, object]]] = {}
    versions: dict[str, str] = {}
    profile: dict[str, object] | None = None
    native_profile: dict[str, object] | None = None
    started = time.monotonic()
    try:
        for name in args.servers:
            server: Server = (
                voxswitch_server(workdir, users, args.server_cpu, args.voxswitch_env, args.voxswitch_cmd)
                if name == "voxswitch"
                else kamailio_server(workdir, users, args.server_cpu)
            )
            versions[name] = server.version()
            say(f"\n== {name} {versions[name]}: starting on UDP {LOOPBACK}:{server.sip_port}")
            try:
                server.start()
                say(f"  ready (pid {server.pid}, idle CPU check: {server.cpu_ticks() / TICKS:.1f} s used so far)")
                for scenario in args.scenarios:
                    bench.warm_up(server, scenario)
                    best, worst = bench.ladder(server, scenario)
                    results.setdefault(name, {})[scenario] = {
                        "best": best,
                        "worst": worst,
                        "limit": limit_of(best, worst, args.max_rate),
                    }
                    say(
                        f"  [{name} {scenario}] highest clean rate {fmt_rate(best)}/s; limit: "
                        f"{results[name][scenario]['limit']}"
                    )
                    if name == "voxswitch" and scenario == "register" and args.profile and best is not None:
                        rate = max(50.0, round(best.achieved * 0.8, -1))
                        profile = run_profile(bench, server, scenario, rate, args.out)  # type: ignore[arg-type]
                        if args.profile_native:
                            native_profile = run_profile(
                                bench,
                                server,
                                scenario,
                                rate,
                                args.out,
                                native=True,  # type: ignore[arg-type]
                            )
            except Exception:
                say(f"  {name} log tail:\n{textwrap.indent(server.log_tail(), '    ')}")
                raise
            finally:
                server.stop()
                say(f"  {name} stopped")
    finally:
        ports.release(bench.sipp_port)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    finish_run(
        info, [s.other_on_server_core for s in bench.steps if s.kind in ("ladder", "busy")], started, time.monotonic()
    )
    info["versions"] = versions

    text_table = table(results, args.scenarios)
    limits = "\n".join(
        f"- {name} {scenario}: {r['limit']}" for name, per in results.items() for scenario, r in per.items()
    )
    say("\n" + text_table)
    say("\nWhat stopped each ladder (the first step that was not clean):\n" + limits)
    say("\n" + load_line(info))
    if profile is not None:
        say(
            "\n"
            + profile_text(
                {**profile, "self": profile["self"][:12], "inclusive": profile["inclusive"][:15]},
                f"Voxswitch profile under REGISTER at {profile['rate']:g}/s",
            )
        )

    report = {
        "machine": info,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "results": {
            name: {
                scenario: {
                    "best": dataclasses.asdict(r["best"]) if r["best"] else None,
                    "worst": dataclasses.asdict(r["worst"]) if r["worst"] else None,
                    "limit": r["limit"],
                }
                for scenario, r in per.items()
            }
            for name, per in results.items()
        },
        "steps": [dataclasses.asdict(s) for s in bench.steps],
        "profile": profile,
        "profile_native": native_profile,
    }
    (args.out / "results.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    steps_md = "\n".join(f"- {s.server} {s.scenario} ({s.kind}): {s.line()}" for s in bench.steps)
    (args.out / "results.md").write_text(
        f"# SIP transactions: Voxswitch vs Kamailio ({info['date']})\n\n"
        f"{info['nproc']} x {info['cpu_model']}, kernel {info['kernel']}; {versions}; SIPp {info['sipp']}\n\n"
        f"{text_table}\n\nLimits:\n{limits}\n\nSteps:\n{steps_md}\n"
    )
    drawn = chart(args.out / "chart.png", bench.steps, results, args.scenarios, info)
    say(
        f"\nwrote {args.out / 'results.json'}, {args.out / 'results.md'}"
        + (f", {args.out / 'chart.png'}" if drawn else " (no chart: matplotlib is not installed)")
        + (f", {args.out / 'profile_register.svg'}" if profile is not None else "")
    )
    failed_servers = [n for n in args.servers if any(r["best"] is None for r in results.get(n, {}).values())]
    return 1 if failed_servers else 0


if __name__ == "__main__":
    sys.exit(main())

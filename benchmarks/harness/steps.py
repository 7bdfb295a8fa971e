"""One SIPp step and the rate ladder: offer a rate for a few seconds, measure, judge it clean or not.

A step is **clean** when every call succeeded, SIPp retransmitted nothing (past an allowance), no
stray message arrived and SIPp achieved at least ``keep_up`` of the offered rate; with a UAS on the
far side (a B2BUA benchmark), the UAS must have seen every call end cleanly too. The ladder doubles
the rate until a step is not clean, then bisects; its result is the highest clean step.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.peers.sipp import SippProcess, SippResult

from .proc import TICKS, children_cpu_seconds, core_busy_ticks
from .servers import Server, say


def _rmem_max() -> int:
    try:
        return int(Path("/proc/sys/net/core/rmem_max").read_text())
    except (OSError, ValueError):
        return 212_992


#: SIPp's socket buffers default to 64 KB, which a burst of answers overflows at high rates
#: (retransmissions that are SIPp's, not the server's): take what the kernel allows (-buff_size).
SIPP_BUFFER = max(65_535, min(_rmem_max(), 8 * 1024 * 1024))


@dataclass
class Step:
    server: str
    scenario: str
    offered: float
    calls: int
    successful: int = 0
    failed: int = 0
    retransmissions: int = 0
    unexpected: int = 0  # out-of-call and dead-call messages
    achieved: float = 0.0
    elapsed: float = 0.0
    server_cpu: float = 0.0  # share of one core, 1.0 = 100 %
    client_cpu: float = 0.0  # every SIPp of the step (UAC and UAS share a core)
    server_core_busy: float | None = None  # the server's core, busy from all sources
    other_on_server_core: float | None = None  # of which not the server
    response_ms: float | None = None  # SIPp's mean response time 1 (ms resolution), if the scenario has one
    # The UAS on the far side of a B2BUA, when there is one.
    uas_successful: int | None = None
    uas_failed: int | None = None
    uas_retransmissions: int | None = None
    uas_unexpected: int | None = None
    uas_cpu: float | None = None
    errors: dict[str, int] | None = None  # what SIPp's error logs say went wrong, by kind
    returncode: int = 0
    timed_out: bool = False
    passed: bool = False
    reason: str = ""
    kind: str = "ladder"  # ladder | busy (a ladder step run again) | warmup | profile | latency

    def line(self) -> str:
        verdict = "clean" if self.passed else f"NOT CLEAN ({self.reason})"
        if not self.passed and self.errors:
            verdict += " [" + "; ".join(f"{kind} x{n}" for kind, n in list(self.errors.items())[:3]) + "]"
        other = f", others on its core {self.other_on_server_core:.0%}" if self.other_on_server_core is not None else ""
        uas = (
            f" | UAS {self.uas_successful} ok, {self.uas_failed} failed, {self.uas_retransmissions} retrans, "
            f"{self.uas_unexpected} stray"
            if self.uas_successful is not None
            else ""
        )
        return (
            f"offered {self.offered:>8.0f}/s -> {self.achieved:>8.0f}/s  "
            f"{self.successful}/{self.calls} ok, {self.failed} failed, {self.retransmissions} retrans, "
            f"{self.unexpected} stray{uas} | server CPU {self.server_cpu:.0%}{other}, SIPp CPU {self.client_cpu:.0%}"
            f"  {verdict}"
        )


@dataclass(frozen=True)
class Judging:
    """What a clean step needs beyond zero failures and zero stray messages."""

    keep_up: float = 0.95  # achieved / offered
    max_retransmissions: int = 0


def _epoch(value: str) -> float | None:
    # SIPp writes "2026-11-23<TAB>09:31:21.618190<TAB>1795426281.618190".
    try:
        return float(value.split("\t")[-1])
    except (ValueError, IndexError):
        return None


def _int(stats: dict[str, str], key: str) -> int:
    try:
        return int(float(stats.get(key) or 0))
    except ValueError:
        return 0


def _duration_ms(value: str | None) -> float | None:
    # SIPp's durations read "HH:MM:SS:micros", e.g. "00:00:00:004000".
    try:
        h, m, s, us = (int(x) for x in (value or "").split(":"))
    except ValueError:
        return None
    return ((h * 60 + m) * 60 + s) * 1000 + us / 1000


def _stray(stats: dict[str, str]) -> int:
    return _int(stats, "OutOfCallMsgs(C)") + _int(stats, "DeadCallMsgs(C)")


# SIPp's -trace_err events, reduced to a kind: which message came instead of which, and so on.
_ERROR_KINDS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (
        re.compile(r"while expecting '([^']+)' \(index \d+\), received '(\S+) (\S+)"),
        lambda m: f"{m[1]} expected, {m[3] if m[2] == 'SIP/2.0' else m[2]} came",
    ),
    (re.compile(r"unexpected (\w+) for call"), lambda m: f"unexpected {m[1]}"),
    (re.compile(r"Max-Retransmission|maximum number of retransmissions", re.I), lambda m: "retransmissions exhausted"),
    (re.compile(r"timeout on message|call timed out|timeout attribute", re.I), lambda m: "timed out waiting"),
    (re.compile(r"Dead call"), lambda m: "message for an aborted call"),
)


def error_kinds(*logs: tuple[str, Path]) -> dict[str, int]:
    """Counts of what went wrong, from (label, -trace_err file) pairs: ``{"uac: 180 expected, 200 came": 3}``."""
    counts: Counter[str] = Counter()
    for label, path in logs:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        # Each event starts with a timestamp "2026-12-01<TAB>19:08:45.324584<TAB>1796152125.324584: ".
        for event in re.split(r"\d{4}-\d\d-\d\d\t[\d:.]+\t[\d.]+: ", text)[1:]:
            for pattern, kind in _ERROR_KINDS:
                if m := pattern.search(event):
                    counts[f"{label}: {kind(m)}"] += 1
                    break
            else:
                counts[f"{label}: {event.strip().splitlines()[0][:60] if event.strip() else '?'}"] += 1
    return dict(counts.most_common())


def wait_idle(server: Server, below: float = 0.05, quiet_s: float = 1.0, timeout: float = 40.0) -> float:
    """Wait until ``server`` used less than ``below`` of a core over ``quiet_s``; the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout and server.alive():
        before = server.cpu_ticks()
        time.sleep(quiet_s)
        if (server.cpu_ticks() - before) / TICKS / quiet_s < below:
            break
    return time.monotonic() - started


def pin(sipp: SippProcess, cpu: str | None) -> SippProcess:
    """Run ``sipp`` on core ``cpu`` (before it is started)."""
    if cpu is not None:
        sipp.argv = ["taskset", "-c", cpu, *sipp.argv]
    return sipp


def run_step(
    step: Step,
    uac: SippProcess,
    server: Server,
    judging: Judging,
    *,
    server_cpu: str | None,
    timeout: float,
    uas: SippProcess | None = None,
    during: Callable[[], None] | None = None,
    hold_s: float = 0.0,
) -> SippResult:
    """Run the UAC (and the UAS it calls through the server, started first) and fill in ``step``.

    CPU is measured over the UAC's run: the server from /proc (all its processes), SIPp from the
    rusage of reaped children, the server's core from /proc/stat (which shows others' load there).
    ``hold_s`` is how long each call stays up once set up: the last calls' hold is not time spent
    setting calls up, so the achieved rate is the calls over the run less one hold.
    """
    core = f"cpu{server_cpu}" if server_cpu is not None else None
    uas_result: SippResult | None = None
    with contextlib.ExitStack() as stack:
        uas_child0 = children_cpu_seconds()
        if uas is not None:
            stack.enter_context(uas)  # started and bound; leaving kills it if still running
        server0, busy0, child0, t0 = server.cpu_ticks(), core_busy_ticks(), children_cpu_seconds(), time.monotonic()
        with uac:
            if during is not None:
                during()
            result = uac.wait(timeout=timeout)
            server1, busy1, child1, t1 = server.cpu_ticks(), core_busy_ticks(), children_cpu_seconds(), time.monotonic()
        if uas is not None:
            uas_result = uas.stop()  # SIGUSR1: it ends its calls and writes its last statistics
    wall = t1 - t0
    last = result.stats
    step.successful = _int(last, "SuccessfulCall(C)")
    step.failed = _int(last, "FailedCall(C)")
    step.retransmissions = _int(last, "Retransmissions(C)")
    step.unexpected = _stray(last)
    step.response_ms = _duration_ms(last.get("ResponseTime1(C)")) if "ResponseTime1(C)" in last else None
    start, end = _epoch(last.get("StartTime", "")), _epoch(last.get("CurrentTime", ""))
    step.elapsed = (end - start) if start is not None and end is not None and end > start else wall
    setting_up = step.elapsed - hold_s
    step.achieved = step.successful / setting_up if setting_up > 0 else 0.0
    step.server_cpu = (server1 - server0) / TICKS / wall
    step.client_cpu = (child1 - child0) / wall
    if uas_result is not None:
        far = uas_result.stats
        step.uas_successful = _int(far, "SuccessfulCall(C)")
        step.uas_failed = _int(far, "FailedCall(C)")
        step.uas_retransmissions = _int(far, "Retransmissions(C)")
        step.uas_unexpected = _stray(far)
        # The UAS was reaped last: what the children used beyond the UAC is the UAS's.
        step.uas_cpu = max(0.0, children_cpu_seconds() - uas_child0 - (child1 - child0)) / wall
        step.client_cpu += step.uas_cpu
    if core is not None and core in busy0:
        step.server_core_busy = (busy1[core] - busy0[core]) / TICKS / wall
        step.other_on_server_core = max(0.0, step.server_core_busy - step.server_cpu)
    step.returncode, step.timed_out = result.returncode, result.timed_out
    logs = [("uac", result.files.errors)] + ([("uas", uas_result.files.errors)] if uas_result is not None else [])
    step.errors = error_kinds(*logs) or None
    step.reason = ", ".join(_problems(step, judging, result, server.alive()))
    step.passed = not step.reason
    return result


def _problems(step: Step, judging: Judging, result: SippResult, server_alive: bool) -> list[str]:
    problems = []
    if step.failed:
        problems.append(f"{step.failed} failed")
    if step.successful < step.calls and not step.failed:
        problems.append(f"{step.calls - step.successful} unfinished")
    if step.retransmissions > judging.max_retransmissions:
        problems.append(f"{step.retransmissions} retransmissions")
    if step.unexpected:
        problems.append(f"{step.unexpected} stray messages")
    if step.uas_successful is not None:
        if step.uas_failed:
            problems.append(f"{step.uas_failed} failed at the UAS")
        if step.uas_successful < step.successful and not step.uas_failed:
            problems.append(f"{step.successful - step.uas_successful} unfinished at the UAS")
        if (step.uas_retransmissions or 0) > judging.max_retransmissions:
            problems.append(f"{step.uas_retransmissions} UAS retransmissions")
        if step.uas_unexpected:
            problems.append(f"{step.uas_unexpected} stray messages at the UAS")
    if step.achieved < judging.keep_up * step.offered:
        problems.append(f"achieved {step.achieved / step.offered:.0%} of offered")
    if result.timed_out:
        problems.append("timed out")
    elif result.returncode != 0 and not problems:
        problems.append(f"sipp exit {result.returncode}")
    if not server_alive:
        problems.append("server died")
    return problems


def ladder(
    run: Callable[[float], Step],
    settle: Callable[[Step], None],
    *,
    start_rate: float,
    factor: float,
    max_rate: float,
    refine: int,
    tag: str,
    min_rate: float = 10.0,
    busy_share: float = 1.0,
    busy_retries: int = 0,
) -> tuple[Step | None, Step | None]:
    """(highest clean step, lowest step that was not clean): climb by ``factor``, then bisect.

    A step that is not clean while other work took more than ``busy_share`` of the server's core
    (the machine is shared) is run again, up to ``busy_retries`` times; the retried one is kept
    as kind "busy" and does not count.
    """

    def judged(rate: float, note: str = "") -> Step:
        step = run(rate)
        for _ in range(busy_retries):
            if step.passed or (step.other_on_server_core or 0.0) <= busy_share:
                break
            say(f"{tag} {step.line()}{note}  (others took {step.other_on_server_core:.0%} of its core: again)")
            step.kind = "busy"
            settle(step)
            step = run(rate)
        say(f"{tag} {step.line()}{note}")
        settle(step)
        return step

    best: Step | None = None
    worst: Step | None = None
    rate = float(start_rate)
    while rate <= max_rate:
        step = judged(rate)
        if step.passed:
            best = step
            if worst is not None:
                break  # came down after a failed start
            rate *= factor
        else:
            worst = step
            if best is not None:
                break
            rate /= factor  # the start rate was already too high: come down
            if rate < min_rate:
                break
    for _ in range(refine):
        if best is None or worst is None:
            break
        rate = round((best.offered + worst.offered) / 2)
        if rate in (best.offered, worst.offered):
            break
        step = judged(rate, "  (refining)")
        if step.passed:
            best = step
        else:
            worst = step
    return best, worst


def fmt_rate(step: Step | None) -> str:
    return f"{step.achieved:,.0f}" if step is not None else "-"


def limit_of(best: Step | None, worst: Step | None, max_rate: float) -> str:
    """What stopped the ladder, judged from the first step that was not clean."""
    if best is None:
        return "no clean step"
    if worst is None:
        return f"ladder ceiling ({max_rate:g}/s) reached"
    if worst.server_cpu >= 0.85 or (
        worst.server_core_busy is not None and worst.server_core_busy >= 0.9 and worst.server_cpu >= 0.6
    ):
        return f"server CPU ({worst.server_cpu:.0%} of its core at {worst.offered:g}/s: {worst.reason})"
    if worst.client_cpu >= 0.85:
        return f"SIPp CPU ({worst.client_cpu:.0%} of its core at {worst.offered:g}/s: {worst.reason})"
    return (
        f"neither core saturated at {worst.offered:g}/s ({worst.reason}; server {worst.server_cpu:.0%}, "
        f"SIPp {worst.client_cpu:.0%}): the server stalls or waits (pauses, locks, I/O), not its CPU"
    )

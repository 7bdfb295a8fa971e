"""py-spy profiles of a running server and what they say: sample shares per thread kind, per
package of the leaf frame, per leaf function and per Voxswitch function with what it calls."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

from tests.peers import processes

from benchmarks.harness.servers import VENV_BIN

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


def _short_path(path: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return tail if marker != "/lib/python3" else "stdlib" + tail[tail.index("/") :]
    return path


def _is_python(name: str) -> bool:
    return ".py)" in name or name.endswith(".py")


def _is_noise(name: str) -> bool:
    # Unresolved addresses and libc's own frames say little about who asked for the work.
    return name.startswith("0x") or "(libc.so" in name or "(?)" in name


def _thread_kind(names: list[str]) -> str:
    joined = ";".join(names)
    if "_connection_worker_thread" in joined:
        return "database threads (aiosqlite)"
    if "Runner.run" in joined or "run_until_complete" in joined:
        return "event loop thread"
    if "(sqlalchemy/" in names[0] or "(aiosqlite/" in names[0] or "greenlet" in names[0]:
        # SQLAlchemy's async layer runs its sync code in greenlets on the event loop thread; py-spy
        # shows a greenlet's stack from the greenlet's own root.
        return "event loop thread (SQLAlchemy greenlets)"
    return "other threads"


def summarise_profile(raw: Path, top: int = 20) -> dict[str, object]:
    """Sample shares from py-spy's raw (collapsed stack) output -- one line per distinct stack,
    frames root-first, then its sample count: per thread kind, per package of the leaf frame, per
    leaf function (self), and per Voxswitch function with everything it calls (inclusive). A native
    leaf (C code, with --native) is named with the nearest caller that says who asked for it."""
    self_count: Counter[str] = Counter()
    incl_count: Counter[str] = Counter()
    area_count: Counter[str] = Counter()
    thread_count: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        names = []
        for frame in stack.split(";"):
            m = _FRAME.match(frame.strip())
            names.append(f"{m['func']} ({_short_path(m['file'])})" if m else frame.strip())
        if not names:
            continue
        total += count
        thread_count[_thread_kind(names)] += count
        leaf = names[-1]
        if not _is_python(leaf):
            caller = next((n for n in reversed(names[:-1]) if not _is_noise(n) and n != leaf), None)
            if caller is not None:
                leaf = f"{leaf} <- {caller}"
        self_count[leaf] += count
        for name in set(names):
            # Inclusive time is told for Voxswitch's own functions (the entry points, CLI and
            # server runner, are ancestors of everything and say nothing).
            if "(voxswitch/" in name and "(voxswitch/cli.py)" not in name:
                incl_count[name] += count
        leaf_file = names[-1].rsplit("(", 1)[-1].rstrip(")")
        parts = leaf_file.split("/")
        area = "/".join(parts[:2]) if parts[0] in ("voxswitch", "stdlib") else parts[0]
        area_count[area] += count

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(k, v / total) for k, v in counter.most_common(top)] if total else []

    return {
        "samples": total,
        "threads": share(thread_count),
        "self_by_package": share(area_count),
        "self": share(self_count),
        "inclusive": share(incl_count),
    }


def profile_text(summary: dict[str, object], title: str) -> str:
    out = [f"{title}: {summary['samples']} samples"]
    for key, label in (
        ("threads", "samples by thread"),
        ("self_by_package", "self time by package/module area (leaf frame)"),
        ("self", "self time (the function itself)"),
        ("inclusive", "inclusive time of Voxswitch functions (the function and what it calls)"),
    ):
        out.append(f"\n{label}:")
        for name, frac in summary.get(key, []):  # type: ignore[attr-defined]
            out.append(f"  {frac:6.1%}  {name}")
    return "\n".join(out)


def py_spy() -> str | None:
    return shutil.which("py-spy", path=str(VENV_BIN)) or shutil.which("py-spy")


def start_py_spy(
    pid: int, seconds: float, raw: Path, svg: Path | None = None, *, native: bool = False, cpu: str | None = None
) -> list[subprocess.Popen[bytes]]:
    """py-spy recording ``pid`` for ``seconds`` into ``raw`` (collapsed stacks) and, if given, a
    flame graph ``svg``; pinned to ``cpu``. ``native`` adds C frames and idle threads, but py-spy
    must then pause the process for every sample, which slows it. Wait with `finish_py_spy`."""
    exe = py_spy()
    if exe is None:
        return []
    outputs = [("raw", raw)] + ([("flamegraph", svg)] if svg is not None else [])
    mode = ["--native", "--idle"] if native else ["--nonblocking"]
    spies = []
    for fmt, path in outputs:
        argv = [exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "100", *mode]
        argv += ["--format", fmt, "--output", str(path)]
        if cpu is not None:
            argv = ["taskset", "-c", cpu, *argv]
        spies.append(processes.spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return spies


def finish_py_spy(spies: list[subprocess.Popen[bytes]]) -> None:
    for spy in spies:
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        finally:
            processes.stop(spy, [(signal.SIGINT, 5.0)])

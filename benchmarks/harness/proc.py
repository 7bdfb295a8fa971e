"""CPU and UDP accounting from /proc, read from outside the processes measured (nothing runs on
their core to get it)."""

from __future__ import annotations

import os
import resource
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm is in parentheses and may hold spaces: split after the last ')'. Fields from state on.
    return text[text.rindex(")") + 2 :].split()


def session_pids(sid: int) -> list[int]:
    """Every process in session ``sid`` (a server and the workers it forked)."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            f = _stat_fields(int(entry.name))
            # After comm: state(0) ppid(1) pgrp(2) session(3) ...
            if f is not None and int(f[3]) == sid:
                pids.append(int(entry.name))
    return pids


def session_cpu_ticks(sid: int) -> int:
    """utime + stime of every process in session ``sid``."""
    total = 0
    for pid in session_pids(sid):
        f = _stat_fields(pid)
        if f is not None:
            total += int(f[11]) + int(f[12])  # utime(11) stime(12)
    return total


def _cpu_lines() -> dict[str, list[int]]:
    """/proc/stat's CPU lines (``cpu``, ``cpu0``, ...): user nice system idle iowait irq softirq steal ..."""
    out: dict[str, list[int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if not line.startswith("cpu"):
            break
        name, *values = line.split()
        out[name] = [int(x) for x in values] + [0] * (8 - len(values))
    return out


def core_busy_ticks() -> dict[str, int]:
    """Busy jiffies per CPU: everything but idle and iowait."""
    return {name: sum(v[:8]) - v[3] - v[4] for name, v in _cpu_lines().items()}


def core_steal_ticks() -> dict[str, int]:
    """Jiffies per CPU that the hypervisor ran something else on this vCPU."""
    return {name: v[7] for name, v in _cpu_lines().items()}


def children_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _socket_inodes(pids: list[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        try:
            fds = os.scandir(f"/proc/{pid}/fd")
        except OSError:
            continue
        with fds:
            for fd in fds:
                try:
                    target = os.readlink(fd.path)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    return inodes


def udp_drops(pids: list[int]) -> int:
    """Datagrams the kernel dropped at these processes' UDP sockets (receive buffer full): the
    per-socket ``drops`` column of /proc/net/udp, summed. Sockets closed meanwhile are not counted."""
    inodes = _socket_inodes(pids)
    total = 0
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        f = line.split()
        if len(f) >= 13 and f[9] in inodes:
            total += int(f[12])
    return total


def udp_counters() -> dict[str, int]:
    """The kernel's UDP counters (/proc/net/snmp: InDatagrams, RcvbufErrors, ...)."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")]
    return {k: int(v) for k, v in zip(lines[0][1:], lines[1][1:], strict=False)}


def softnet_dropped() -> int:
    """Packets dropped because a CPU's backlog queue was full (/proc/net/softnet_stat, column 2)."""
    return sum(int(line.split()[1], 16) for line in Path("/proc/net/softnet_stat").read_text().splitlines())

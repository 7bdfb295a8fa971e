"""Free loopback ports for peers: single UDP/TCP ports, SIP ports free on both, RTP port ranges.

A port is found by binding it and releasing it again, so another process may take it before the
peer binds; the window is short, and ports handed out by this module are remembered so that two
peers of one test session never get the same one. SIP over UDP and TCP shares one port number
(RFC 3261 18.1), so :func:`free_sip_port` returns a number that is free on both.
"""

from __future__ import annotations

import os
import random
import socket
import threading
from pathlib import Path

LOOPBACK = "127.0.0.1"

_lock = threading.Lock()
_handed_out: set[int] = set()
_random = random.Random()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _bindable(port: int, kind: socket.SocketKind, host: str) -> bool:
    with socket.socket(_family(host), kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def tcp_port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether nothing listens on TCP ``port`` of ``host`` right now."""
    return _bindable(port, socket.SOCK_STREAM, host)


def udp_port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether nothing is bound to UDP ``port`` of ``host`` right now."""
    return _bindable(port, socket.SOCK_DGRAM, host)


def claim(port: int) -> bool:
    """Remember ``port`` as handed out; False if it already was."""
    return _claim(port)


def _claim(port: int) -> bool:
    with _lock:
        if port in _handed_out:
            return False
        _handed_out.add(port)
        return True


def _ephemeral_port(kind: socket.SocketKind, host: str) -> int:
    with socket.socket(_family(host), kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_udp_port(host: str = LOOPBACK) -> int:
    """A UDP port on ``host`` that nothing is bound to right now."""
    for _ in range(100):
        port = _ephemeral_port(socket.SOCK_DGRAM, host)
        if _claim(port):
            return port
    raise RuntimeError("no free UDP port")


def free_tcp_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    for _ in range(100):
        port = _ephemeral_port(socket.SOCK_STREAM, host)
        if _claim(port):
            return port
    raise RuntimeError("no free TCP port")


def free_sip_port(host: str = LOOPBACK) -> int:
    """A port number free on ``host`` for both UDP and TCP, as a SIP listener needs."""
    for _ in range(200):
        port = _ephemeral_port(socket.SOCK_STREAM, host)
        if _bindable(port, socket.SOCK_DGRAM, host) and _claim(port):
            return port
    raise RuntimeError("no port free on both UDP and TCP")


def _local_port_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _worker_slice(low: int, high: int, count: int) -> tuple[int, int]:
    """Under pytest-xdist each worker takes RTP ranges from its own slice of [low, high), so the
    workers' peers never pick the same ports (the picking above is only safe within a process)."""
    try:
        index = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    except ValueError:
        return low, high
    if workers <= 1:
        return low, high
    width = (high - low) // workers
    start = low + index * width
    return start, max(start + count + 2, start + width)


def free_rtp_range(count: int = 10, host: str = LOOPBACK) -> int:
    """The even first port of ``count`` consecutive UDP ports free on ``host``, for RTP/RTCP.

    Ranges are taken below the kernel's ephemeral range, so that outgoing connections and the
    ``port 0`` pickers above cannot land in them while a peer is running.
    """
    if count < 1:
        raise ValueError("count must be positive")
    ephemeral_low, _ = _local_port_range()
    low, high = _worker_slice(20000, max(20000 + count + 2, ephemeral_low) - count, count)
    for _ in range(300):
        base = _random.randrange(low, high) & ~1
        ports = range(base, base + count)
        with _lock:
            if any(p in _handed_out for p in ports):
                continue
        if all(_bindable(p, socket.SOCK_DGRAM, host) for p in ports):
            with _lock:
                if any(p in _handed_out for p in ports):
                    continue
                _handed_out.update(ports)
            return base
    raise RuntimeError(f"no {count} consecutive free UDP ports")


def release(*ports: int) -> None:
    """Forget ports handed out earlier, so that they may be handed out again."""
    with _lock:
        _handed_out.difference_update(ports)

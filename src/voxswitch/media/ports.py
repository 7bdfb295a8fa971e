"""RTP/RTCP port pairs from the configured range (RFC 3550 §11: RTP on an even port, RTCP on the next)."""

from __future__ import annotations

import socket


class PortRangeExhausted(RuntimeError):
    pass


class RtpPortAllocator:
    def __init__(self, low: int = 10_000, high: int = 20_000, host: str = "0.0.0.0") -> None:
        if low % 2:
            low += 1
        if high - low < 2:
            raise ValueError("the RTP port range needs room for at least one pair")
        self.low, self.high, self.host = low, high, host
        self._next = low
        self._used: set[int] = set()

    def allocate(self) -> tuple[socket.socket, socket.socket]:
        """Two bound, non-blocking UDP sockets: RTP on an even port and RTCP on the one above."""
        span = (self.high - self.low) // 2
        for _ in range(span):
            port = self._next
            self._next = self.low if self._next + 2 >= self.high else self._next + 2
            if port in self._used:
                continue
            pair = self._bind_pair(port)
            if pair is not None:
                self._used.add(port)
                return pair
        raise PortRangeExhausted(f"no free RTP port pair in {self.low}-{self.high}")

    def _bind_pair(self, port: int) -> tuple[socket.socket, socket.socket] | None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        rtp = socket.socket(family, socket.SOCK_DGRAM)
        rtcp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            rtp.bind((self.host, port))
            rtcp.bind((self.host, port + 1))
        except OSError:
            rtp.close()
            rtcp.close()
            return None
        for s in (rtp, rtcp):
            s.setblocking(False)
        return rtp, rtcp

    def release(self, port: int) -> None:
        self._used.discard(port)

    @property
    def in_use(self) -> int:
        return len(self._used)

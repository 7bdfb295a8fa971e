"""Prometheus metrics for `/metrics`, one registry per application instance (tests run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "voxswitch_http_requests_total",
            "HTTP requests by surface, method and status",
            ["surface", "method", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "voxswitch_http_request_duration_seconds",
            "HTTP request latency by surface",
            ["surface"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.active_calls = Gauge("voxswitch_active_calls", "Calls not yet ended", registry=self.registry)
        self.uptime = Gauge("voxswitch_uptime_seconds", "Seconds since start", registry=self.registry)

    def observe_request(self, surface: str, method: str, status: int, seconds: float) -> None:
        self.http_requests.labels(surface, method, str(status)).inc()
        self.http_latency.labels(surface).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

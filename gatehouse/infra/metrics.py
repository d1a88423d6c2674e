"""Prometheus metrics: gRPC requests, latencies and denials by reason, one registry per server."""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server


class GrpcMetrics:
    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.service = service
        self.requests = Counter(
            "gatehouse_grpc_requests", "gRPC calls served", ["service", "method", "code"],
            registry=self.registry,
        )
        self.denials = Counter(
            "gatehouse_grpc_denials", "gRPC calls refused, by reason", ["service", "method", "reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gatehouse_grpc_latency_seconds", "gRPC call latency", ["service", "method"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )

    def observe(self, method: str, code: grpc.StatusCode, reason: str | None, seconds: float | None) -> None:
        self.requests.labels(self.service, method, code.name).inc()
        if reason is not None and code is not grpc.StatusCode.OK:
            self.denials.labels(self.service, method, reason).inc()
        if seconds is not None:
            self.latency.labels(self.service, method).observe(seconds)


def serve_metrics(registry: CollectorRegistry, host: str,
                  port: int) -> tuple[WSGIServer, threading.Thread] | None:
    """Expose /metrics over HTTP on a side port (0 disables)."""
    if port:
        return start_http_server(port, addr=host, registry=registry)
    return None

"""Prometheus metrics at /metrics: requests by route and status, latency and batch-size histograms, errors."""

from __future__ import annotations

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """The server's counters, in a registry of their own (two apps in one process do not collide)."""

    def __init__(self):
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.content_type = CONTENT_TYPE_LATEST
        self.requests = Counter("deepworks_requests", "HTTP requests by route and status code",
                                ["route", "code"], registry=self.registry)
        self.errors = Counter("deepworks_errors", "requests answered with a 4xx or 5xx code", ["route", "code"],
                              registry=self.registry)
        self.latency = Histogram("deepworks_request_seconds", "time from request to response, by route",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batches = Histogram("deepworks_batch_size", "items per forward pass of the micro-batcher, by model",
                                 ["model"], buckets=BATCH_BUCKETS, registry=self.registry)

        self.children: dict[tuple, tuple] = {}  # (route, code) -> its counters: labels() looks them up under a lock

    def request(self, route: str, code: int, seconds: float) -> None:
        counted = self.children.get((route, code))
        if counted is None:
            counted = self.children[route, code] = (self.requests.labels(route, str(code)), self.latency.labels(route),
                                                    self.errors.labels(route, str(code)) if code >= 400 else None)
        counted[0].inc()
        counted[1].observe(seconds)
        if counted[2] is not None:
            counted[2].inc()

    def batch(self, model: str, size: int) -> None:
        self.batches.labels(model).observe(size)

    def text(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

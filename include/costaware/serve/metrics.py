"""Prometheus metrics of one serving process (its own registry, so two apps in one test
process do not share counters)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Latency buckets in seconds: sub-millisecond to a second (a scored row takes ~0.2-2 ms).
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
SCORE_BUCKETS = tuple(i / 10 for i in range(1, 11))


@dataclass
class ServeMetrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    scores: Histogram
    version: Gauge
    spool_depth: Gauge
    dropped: Gauge
    logged: Gauge

    @classmethod
    def create(
        cls, depth: Callable[[], float], dropped: Callable[[], float], logged: Callable[[], float]
    ) -> ServeMetrics:
        reg = CollectorRegistry()
        m = cls(
            registry=reg,
            requests=Counter(
                "costaware_serve_requests",
                "HTTP requests by endpoint and status code",
                ["endpoint", "status"],
                registry=reg,
            ),
            latency=Histogram(
                "costaware_serve_latency_seconds",
                "time to answer /predict (validation, scoring, queueing the log records)",
                buckets=LATENCY_BUCKETS,
                registry=reg,
            ),
            scores=Histogram(
                "costaware_serve_score",
                "served scores (probability of the positive class) by alias",
                ["alias"],
                buckets=SCORE_BUCKETS,
                registry=reg,
            ),
            version=Gauge(
                "costaware_serve_model_version",
                "1 for the registry version each alias serves",
                ["alias", "version"],
                registry=reg,
            ),
            spool_depth=Gauge(
                "costaware_serve_log_pending_records",
                "logged predictions not yet in the ledger (memory queue + on-disk spool)",
                registry=reg,
            ),
            dropped=Gauge(
                "costaware_serve_log_dropped_records",
                "logged predictions lost (should stay 0)",
                registry=reg,
            ),
            logged=Gauge(
                "costaware_serve_log_shipped_records",
                "logged predictions written to the ledger by this process",
                registry=reg,
            ),
        )
        m.spool_depth.set_function(depth)
        m.dropped.set_function(dropped)
        m.logged.set_function(logged)
        return m

    def set_versions(self, served: dict[str, str | None]) -> None:
        self.version.clear()
        for alias, version in served.items():
            if version is not None:
                self.version.labels(alias=alias, version=version).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)

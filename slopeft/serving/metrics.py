"""Prometheus metrics of one server (its own registry, so several apps in one process do not mix)."""

from __future__ import annotations

from collections import Counter as Tally
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServingMetrics:
    """Requests, latency, batch sizes and queue depth, overall and per adapter."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "slopeft_requests", "HTTP requests answered", ["endpoint", "adapter", "status"], registry=r
        )
        self.latency = Histogram(
            "slopeft_request_seconds", "Time from receiving a request to answering it", ["endpoint", "adapter"],
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.examples = Counter("slopeft_examples", "Examples computed by the engine", ["adapter"], registry=r)
        self.batch_examples = Histogram(
            "slopeft_batch_examples", "Examples per engine batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_adapters = Histogram(
            "slopeft_batch_adapters", "Distinct adapters per engine batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram(
            "slopeft_batch_seconds", "Engine time per batch", buckets=LATENCY_BUCKETS, registry=r
        )
        self.passes = Counter(
            "slopeft_forward_passes", "Forward passes (a batch is split by input length)", ["lane", "path"],
            registry=r,
        )
        self.queue_depth = Gauge("slopeft_queue_depth", "Examples waiting for the engine", registry=r)
        self.adapter_queue = Gauge(
            "slopeft_adapter_pending", "Examples of an adapter queued or in flight", ["adapter"], registry=r
        )
        self.adapters_loaded = Gauge("slopeft_adapters_loaded", "Adapters loaded", registry=r)
        self.rejected = Counter(
            "slopeft_rejected", "Requests refused before reaching the engine", ["reason"], registry=r
        )

    def observe_batch(self, batch: list[Any], seconds: float) -> None:
        """Called by the engine after each batch."""
        per_adapter = Tally(job.adapter.name for job in batch)
        self.batch_examples.observe(len(batch))
        self.batch_adapters.observe(len(per_adapter))
        self.batch_seconds.observe(seconds)
        adapters = {job.adapter.name: job.adapter for job in batch}
        for name, count in per_adapter.items():
            self.examples.labels(name).inc(count)
            self.adapter_queue.labels(name).set(adapters[name].pending)

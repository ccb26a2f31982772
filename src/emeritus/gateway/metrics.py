"""Prometheus metrics of one gateway process, on a registry of its own (not the global one, so
several apps in one process, as in tests, do not collide)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self, loaded: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "emeritus_requests",
            "Chat requests answered",
            ["model", "status"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "emeritus_tokens", "Tokens processed", ["model", "kind"], registry=self.registry
        )
        self.latency = Histogram(
            "emeritus_request_seconds",
            "Time to answer a chat request",
            ["model"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.denials = Counter(
            "emeritus_denials",
            "Requests refused by access control",
            ["reason"],
            registry=self.registry,
        )
        self.feedback = Counter(
            "emeritus_feedback",
            "Ratings of responses, by model and rating",
            ["model", "rating"],
            registry=self.registry,
        )
        # The admission layer (docs/design/admission.md, Metrics).
        self.queue_length = Gauge(
            "emeritus_queue_length",
            "Requests waiting for a slot of the model",
            ["model"],
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "emeritus_queue_wait_seconds",
            "Time requests waited for a slot",
            ["model"],
            buckets=(0.001, 0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.queue_timeouts = Counter(
            "emeritus_queue_timeouts",
            "Requests refused with 503: no slot came free within the queue wait",
            ["model"],
            registry=self.registry,
        )
        self.slots_busy = Gauge(
            "emeritus_slots_busy",
            "Slots of the model running a generation",
            ["model"],
            registry=self.registry,
        )
        self.streams_open = Gauge(
            "emeritus_streams_open",
            "Streamed responses still being written to their clients",
            ["model"],
            registry=self.registry,
        )
        self.cutoffs = Counter(
            "emeritus_cutoffs",
            "Requests cut off (499): the client disconnected or stopped reading",
            ["model", "reason"],
            registry=self.registry,
        )
        loaded_models = Gauge(
            "emeritus_loaded_models", "Models loaded in this process", registry=self.registry
        )
        loaded_models.set_function(loaded)

    def render(self) -> bytes:
        return generate_latest(self.registry)

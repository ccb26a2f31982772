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
        loaded_models = Gauge(
            "emeritus_loaded_models", "Models loaded in this process", registry=self.registry
        )
        loaded_models.set_function(loaded)

    def render(self) -> bytes:
        return generate_latest(self.registry)

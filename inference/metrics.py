"""Prometheus metrics, served at /metrics.

Request metrics are read off the request log: every /v1 request writes exactly one
RequestLog row (the API layer's job), so counting rows as they are saved counts every
request once, with its status, model, tokens and timings. Model loads come from the
engine's observer hooks; queue depth and the resident model are read at scrape time.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable, Iterator

from django.db.models.signals import post_save
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .engine import EngineObserver
from .models import RequestLog

if TYPE_CHECKING:
    from .engine import Engine

REQUESTS = Counter(
    "mlx_server_requests", "API requests by endpoint, resolved model, HTTP status and outcome.",
    ["endpoint", "model", "status", "outcome"],
)
PROMPT_TOKENS = Counter("mlx_server_prompt_tokens", "Prompt tokens processed.", ["model"])
CACHED_TOKENS = Counter("mlx_server_cached_prompt_tokens", "Prompt tokens reused from the prefix cache.",
                        ["model"])
COMPLETION_TOKENS = Counter("mlx_server_completion_tokens", "Tokens generated (cancelled requests too).",
                            ["model"])
TTFT = Histogram(
    "mlx_server_time_to_first_token_seconds", "From request arrival to the first generated text.", ["model"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
DECODE_RATE = Histogram(
    "mlx_server_decode_tokens_per_second", "Decode speed of each completed generation.", ["model"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
LOADS = Counter("mlx_server_model_loads", "Model loads by result (ok, failed).", ["model", "result"])
SWAPS = Counter("mlx_server_model_swaps", "Loads that unloaded another model first.", ["model"])
LOAD_SECONDS = Histogram(
    "mlx_server_model_load_seconds", "Time to prepare and load a model (swaps included).", ["model"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
)
UNLOADS = Counter("mlx_server_model_unloads", "Models unloaded, by reason (swap, budget, ttl, request, shutdown).",
                  ["model", "reason"])


ROUTE_PARAM = re.compile(r"<(?:\w+:)?(\w+)>")  # <path:model> -> {model}, as in the OpenAPI paths


def endpoint_label(path: str) -> str:
    """The route pattern, never the raw path: unknown URLs must not grow the label set."""
    try:
        match = resolve(path)
    except Resolver404:
        return "unknown"
    return "/" + ROUTE_PARAM.sub(r"{\1}", match.route)


def record_request(sender, instance: RequestLog, created: bool, **kwargs) -> None:
    """post_save receiver: one RequestLog row is one request."""
    if not created:
        return
    model = instance.resolved_model or ""
    REQUESTS.labels(endpoint_label(instance.endpoint), model, str(instance.status_code), instance.outcome).inc()
    if not model:
        return
    PROMPT_TOKENS.labels(model).inc(instance.prompt_tokens or 0)
    CACHED_TOKENS.labels(model).inc(instance.cached_tokens or 0)
    COMPLETION_TOKENS.labels(model).inc(instance.completion_tokens or 0)
    if instance.ttft_ms is not None:
        TTFT.labels(model).observe(instance.ttft_ms / 1000)
    if instance.decode_tps and instance.outcome == RequestLog.Outcome.OK:
        DECODE_RATE.labels(model).observe(instance.decode_tps)


class EngineMetrics(EngineObserver):
    """The engine's load and unload hooks, as counters and a histogram."""

    def model_loaded(self, model_id: str, seconds: float, swapped_from: str | None) -> None:
        LOADS.labels(model_id, "ok").inc()
        LOAD_SECONDS.labels(model_id).observe(seconds)
        if swapped_from:
            SWAPS.labels(model_id).inc()

    def model_load_failed(self, model_id: str) -> None:
        LOADS.labels(model_id, "failed").inc()

    def model_unloaded(self, model_id: str, reason: str) -> None:
        UNLOADS.labels(model_id, reason).inc()


class EngineStateCollector(Collector):
    """Read at scrape time: requests waiting, and which model is resident (and how big)."""

    FAMILIES = {  # name: (help, labels)
        "mlx_server_queue_depth": ("Requests waiting behind the running one.", None),
        "mlx_server_model_loaded_bytes": ("Bytes of the resident model's weights.", ["model"]),
        "mlx_server_mlx_memory_bytes": ("MLX memory (active, peak, cache).", ["kind"]),
    }

    def __init__(self, engine: Callable[[], Engine]):
        """`engine`: the process's engine, asked for at each scrape (runtime.get_engine)."""
        self._engine = engine

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The families without their values: registering at start-up must not build the
        engine (a distributed rank joins its group before the engine is made)."""
        for name, (text, labels) in self.FAMILIES.items():
            yield GaugeMetricFamily(name, text, labels=labels)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        status = self._engine().status()
        queue, loaded, memory = (GaugeMetricFamily(name, text, labels=labels)
                                 for name, (text, labels) in self.FAMILIES.items())
        queue.add_metric([], status["queued"])
        yield queue
        if status["loaded_model"]:
            loaded.add_metric([status["loaded_model"]], status["model_bytes"] or 0)
        yield loaded
        for kind in ("active", "peak", "cache"):
            memory.add_metric([kind], status["memory"][f"{kind}_bytes"])
        yield memory


def connect() -> None:
    """Count every request-log row as it is saved (runtime.connect, from the app's ready())."""
    post_save.connect(record_request, sender=RequestLog, dispatch_uid="mlx_server_metrics")


def metrics_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)

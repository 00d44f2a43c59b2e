"""The admin dashboard's figures: the request log over a chosen window, in time buckets and
per model, ready for the charts (inference/templates/admin/inference/requestlog/dashboard.html).

Everything is read from the log rows, so the figures survive restarts; model load times are
the exception (a row does not keep them): they come from this process's load histogram.
"""
from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from .metrics import LOAD_SECONDS
from .models import RequestLog, ToolCallLog

# window name -> (length, bucket)
WINDOWS: dict[str, tuple[timedelta, timedelta]] = {
    "15m": (timedelta(minutes=15), timedelta(minutes=1)),
    "1h": (timedelta(hours=1), timedelta(minutes=1)),
    "6h": (timedelta(hours=6), timedelta(minutes=5)),
    "24h": (timedelta(hours=24), timedelta(minutes=15)),
    "7d": (timedelta(days=7), timedelta(hours=2)),
}
DEFAULT_WINDOW = "1h"
PERCENTILES = (50, 90, 99)


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (None for no values): a real observed value, never interpolated."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _bucket_starts(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    first = datetime.fromtimestamp(start.timestamp() // step.total_seconds() * step.total_seconds(), start.tzinfo)
    starts = []
    while first <= end:
        starts.append(first)
        first += step
    return starts


def load_times() -> list[dict[str, Any]]:
    """Loads per model since this process started: count and mean seconds."""
    rows: dict[str, dict[str, float]] = defaultdict(dict)
    for metric in LOAD_SECONDS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                rows[sample.labels["model"]]["count"] = sample.value
            elif sample.name.endswith("_sum"):
                rows[sample.labels["model"]]["sum"] = sample.value
    return [{"model": model, "loads": int(v.get("count", 0)),
             "mean_s": round(v["sum"] / v["count"], 2) if v.get("count") else None}
            for model, v in sorted(rows.items())]


def dashboard(window: str, now: datetime | None = None) -> dict[str, Any]:
    """Every chart's data for `window` (a WINDOWS key)."""
    length, step = WINDOWS[window]
    end = now or timezone.now()
    start = end - length
    starts = _bucket_starts(start, end, step)
    minutes = step.total_seconds() / 60

    def bucket(at: datetime) -> int:
        return min(len(starts) - 1, max(0, int((at - starts[0]) / step)))

    rows = list(RequestLog.objects.filter(created_at__gte=start, created_at__lte=end).values(
        "created_at", "resolved_model", "outcome", "ttft_ms", "decode_tps", "prompt_tokens",
        "cached_tokens", "swapped_from"))
    by_series: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(starts))
    ttft: dict[str, list[float]] = defaultdict(list)
    tps: dict[str, list[float]] = defaultdict(list)
    prompt = [0] * len(starts)
    cached = [0] * len(starts)
    swaps = [0] * len(starts)
    for row in rows:
        i = bucket(row["created_at"])
        model = row["resolved_model"] or "(none)"
        by_series[f"{model} · {row['outcome']}"][i] += 1 / minutes
        if row["ttft_ms"] is not None and row["resolved_model"]:
            ttft[model].append(row["ttft_ms"])
        if row["decode_tps"] and row["outcome"] == RequestLog.Outcome.OK:
            tps[model].append(row["decode_tps"])
        prompt[i] += row["prompt_tokens"] or 0
        cached[i] += row["cached_tokens"] or 0
        swaps[i] += bool(row["swapped_from"])

    failures = [0] * len(starts)
    parsed = [0] * len(starts)
    for call in ToolCallLog.objects.filter(request__created_at__gte=start, request__created_at__lte=end).values(
            "request__created_at", "parsed_ok"):
        (parsed if call["parsed_ok"] else failures)[bucket(call["request__created_at"])] += 1

    def percentiles(values: dict[str, list[float]]) -> dict[str, Any]:
        models = sorted(values)
        return {"models": models, "samples": [len(values[m]) for m in models],
                "series": {f"p{p}": [round(percentile(values[m], p), 1) for m in models] for p in PERCENTILES}}

    return {
        "window": window,
        "start": start.isoformat(), "end": end.isoformat(),
        "bucket_minutes": minutes,
        "labels": [s.isoformat() for s in starts],
        "requests": len(rows),
        "requests_per_minute": {name: [round(v, 3) for v in values] for name, values in sorted(by_series.items())},
        "ttft_ms": percentiles(ttft),
        "decode_tps": percentiles(tps),
        "cache_hit_rate": [round(c / p, 3) if p else None for c, p in zip(cached, prompt)],
        "cache_hit_rate_window": round(sum(cached) / sum(prompt), 3) if sum(prompt) else None,
        "swaps": swaps,
        "tool_calls_parsed": parsed,
        "tool_call_failures": failures,
        "load_times": load_times(),
    }

"""The soak: mixed traffic from several clients against one live server for a bounded time,
with the server's memory sampled throughout. Shared by the CI variant (tests/test_e2e_soak.py,
~3 minutes) and the long local run (bench/soak.py, which writes the figures and the chart).

Every request kind the server has: chat (streamed, whole, cancelled mid-stream, n > 1), swaps
between two text models, images on a vision fixture, forced tool calls, response_format,
bad input, the Messages API (and count_tokens), the Responses API, embeddings.
"""
from __future__ import annotations

import base64
import io
import json
import random
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests

from testkit.live import LiveServer

CHAT, OTHER, VISION, EMBED = "smollm2", "smollm2-bf16", "tiny-qwen3-vl", "minilm"
ASK = [{"role": "user", "content": "Name a colour."}]
TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                        "required": ["city"]}}}
SCHEMA = {"type": "json_schema", "json_schema": {"name": "colour", "strict": True, "schema": {
    "type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"],
    "additionalProperties": False}}}


def models(smollm2_dir: Path, smollm2_bf16_dir: Path, vision_dir: Path, minilm_dir: Path | None) -> dict:
    entries = [
        {"id": CHAT, "source": {"path": str(smollm2_dir)}, "context_length": 2048, "tool_format": "qwen_tool_call"},
        {"id": OTHER, "source": {"path": str(smollm2_bf16_dir)}, "context_length": 2048},
        {"id": VISION, "source": {"path": str(vision_dir)}, "backend": "vision", "tool_format": "qwen_tool_call"},
    ]
    if minilm_dir is not None:
        entries.append({"id": EMBED, "source": {"path": str(minilm_dir)}, "backend": "embedding"})
    return {"default": CHAT, "models": entries}


def png() -> str:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def kinds(has_embeddings: bool) -> dict[str, tuple[int, callable]]:
    """name -> (weight, send(url) -> status); a send returns the HTTP status it got."""
    image = png()

    def chat(url, **body):
        body = {"model": CHAT, "messages": ASK, "max_tokens": 6, "temperature": 0, **body}
        return requests.post(f"{url}/v1/chat/completions", json=body, timeout=600).status_code

    def stream(url, **body):
        body = {"model": CHAT, "messages": ASK, "max_tokens": 6, "stream": True, **body}
        with requests.post(f"{url}/v1/chat/completions", json=body, stream=True, timeout=600) as response:
            for _ in response.iter_lines():
                pass
            return response.status_code

    def cancelled(url):
        body = {"model": CHAT, "messages": ASK, "max_tokens": 200, "stream": True}
        with requests.post(f"{url}/v1/chat/completions", json=body, stream=True, timeout=600) as response:
            for n, _ in enumerate(response.iter_lines()):
                if n >= 3:
                    break  # leave mid-stream: the server cancels and logs 499
            return 499 if response.status_code == 200 else response.status_code

    def post(path, body, **headers):
        return lambda url: requests.post(f"{url}{path}", json=body, timeout=600, headers=headers).status_code

    table = {
        "chat": (6, chat),
        "chat stream": (6, stream),
        "chat n=2": (1, lambda url: chat(url, n=2, temperature=0.7)),
        "cancelled mid-stream": (3, cancelled),
        "swap": (2, lambda url: chat(url, model=OTHER)),
        "image": (2, lambda url: chat(url, model=VISION, messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is it?"}, {"type": "image_url", "image_url": {"url": image}}]}])),
        "forced tool call": (2, lambda url: chat(url, tools=[TOOL], max_tokens=24, tool_choice={
            "type": "function", "function": {"name": "get_weather"}})),
        "response_format": (2, lambda url: chat(url, response_format=SCHEMA, max_tokens=16)),
        "bad input": (3, post("/v1/chat/completions", {"model": CHAT, "messages": ASK, "temperature": 5})),
        "bad json": (1, lambda url: requests.post(f"{url}/v1/chat/completions", data=b"{nope", timeout=60,
                                                   headers={"Content-Type": "application/json"}).status_code),
        "unknown model": (1, post("/v1/chat/completions", {"model": "nope", "messages": ASK})),
        "messages": (3, post("/v1/messages", {"model": CHAT, "max_tokens": 6, "messages": ASK})),
        "messages stream": (2, lambda url: _drain(url, "/v1/messages", {"model": CHAT, "max_tokens": 6,
                                                                        "messages": ASK, "stream": True})),
        "count_tokens": (1, post("/v1/messages/count_tokens", {"model": CHAT, "messages": ASK})),
        "responses": (3, post("/v1/responses", {"model": CHAT, "input": "Name a colour.", "max_output_tokens": 6})),
        "models": (1, lambda url: requests.get(f"{url}/v1/models", timeout=60).status_code),
    }
    if has_embeddings:
        table["embeddings"] = (2, post("/v1/embeddings", {"model": EMBED, "input": ["a colour", "a city"]}))
    return table


def _drain(url: str, path: str, body: dict) -> int:
    with requests.post(f"{url}{path}", json=body, stream=True, timeout=600) as response:
        for _ in response.iter_lines():
            pass
        return response.status_code


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class Soak:
    server: LiveServer
    seconds: float
    clients: int = 4
    sample_every: float = 2.0
    seed: int = 0
    outcomes: Counter = field(default_factory=Counter)  # (kind, status) -> count
    failures: list = field(default_factory=list)  # client-side exceptions
    samples: list = field(default_factory=list)  # {t, rss, active, peak, cache}
    sent: int = 0

    def run(self, has_embeddings: bool) -> dict:
        table = kinds(has_embeddings)
        names = list(table)
        weights = [table[n][0] for n in names]
        lock = threading.Lock()
        started = time.monotonic()
        deadline = started + self.seconds
        done = threading.Event()

        def client(i: int) -> None:
            rng = random.Random(self.seed + i)
            first = names[i::self.clients]  # between them, the clients send every kind first
            while time.monotonic() < deadline:
                name = first.pop() if first else rng.choices(names, weights)[0]
                try:
                    status = table[name][1](self.server.url)
                except requests.RequestException as exc:
                    status = "error"
                    with lock:
                        self.failures.append(f"{name}: {type(exc).__name__}: {exc}"[:300])
                with lock:
                    self.outcomes[(name, status)] += 1
                    self.sent += 1

        def sampler() -> None:
            while not done.is_set():
                self.sample(started)
                done.wait(self.sample_every)

        watcher = threading.Thread(target=sampler, daemon=True)
        watcher.start()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(self.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        done.set()
        watcher.join()
        self.sample(started)
        return self.report(time.monotonic() - started)

    def sample(self, started: float) -> None:
        try:
            memory = requests.get(f"{self.server.url}/health", timeout=30).json().get("memory") or {}
        except requests.RequestException:
            memory = {}
        self.samples.append({"t": round(time.monotonic() - started, 2), "rss": rss_bytes(self.server.process.pid),
                             "active": memory.get("active_bytes"), "peak": memory.get("peak_bytes"),
                             "cache": memory.get("cache_bytes")})

    def report(self, wall: float) -> dict:
        time.sleep(2)  # rows of the last cancelled streams are written as they unwind
        rows = self.server.log_rows()
        statuses = Counter(r["status_code"] for r in rows)
        by_kind: dict[str, dict] = {}
        for (name, status), count in sorted(self.outcomes.items(), key=str):
            by_kind.setdefault(name, {})[str(status)] = count
        rss = [s["rss"] for s in self.samples]
        active = [s["active"] for s in self.samples if s["active"] is not None]
        return {
            "seconds": round(wall, 1), "clients": self.clients, "requests": self.sent,
            "by_kind": by_kind, "client_errors": self.failures[:20], "client_error_count": len(self.failures),
            "server_5xx": sum(c for s, c in statuses.items() if s >= 500),
            "log_rows": len(rows), "log_statuses": {str(k): v for k, v in sorted(statuses.items())},
            "server_alive": self.server.process.poll() is None,
            "rss": flatness(rss), "mlx_active": flatness(active),
            "mlx_peak_bytes": max((s["peak"] or 0) for s in self.samples),
            "samples": self.samples,
        }


def flatness(values: list[float]) -> dict:
    """Memory after warm-up is flat when the last quarter's median is within 5% of the second's."""
    if len(values) < 8:
        return {"q2_median": None, "q4_median": None, "ratio": None, "flat": None}
    n = len(values)
    q2 = statistics.median(values[n // 4: n // 2])
    q4 = statistics.median(values[3 * n // 4:])
    ratio = q4 / q2 if q2 else None
    return {"q2_median": q2, "q4_median": q4, "ratio": round(ratio, 4) if ratio else None,
            "flat": ratio is not None and abs(ratio - 1) <= 0.05}

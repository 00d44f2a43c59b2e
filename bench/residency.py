"""Residency: (1) time to first token of a follow-up turn of a ~1,500-token conversation after
its model was swapped away and back, with the prompt cache on disk over the same turn without
it (MLX_SERVER_PROMPT_CACHE_DISK_BYTES=0); (2) 4 clients alternating two models, aggregate
time with a budget holding both over the one-model rule; (3) the disk cache's write and read
time per GB of KV. All measured in this one run; the model loads are not in (1)'s TTFT (the
swap-back is a load call first), they are (2)'s point.

    .venv/bin/python -m bench.residency [--model-dir DIR] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import requests

from bench.common import default_model_dir, machine_info
from bench.prefix_cache import FILLER, TOPICS, ttft


def conversation() -> list[dict]:
    messages = [{"role": "system", "content": "You are a patient assistant who remembers the whole conversation."}]
    for topic in TOPICS[:6]:
        messages += [{"role": "user", "content": f"Tell me about {topic}."},
                     {"role": "assistant", "content": FILLER.format(t=topic) * 5}]
    return messages


def models(model_dir: Path) -> dict:
    return {"models": [{"id": "m", "source": {"path": str(model_dir)}, "context_length": 4096},
                       {"id": "other", "source": {"path": str(model_dir)}, "context_length": 4096}]}


def swap_back(model_dir: Path, disk: bool) -> dict:
    from testkit.live import LiveServer

    env = {"MLX_SERVER_PROMPT_CACHE_DISK_BYTES": str(8 << 30) if disk else "0"}
    with tempfile.TemporaryDirectory() as tmp, LiveServer(Path(tmp), models(model_dir), env).start() as server:
        client = server.openai(timeout=900)
        turn = conversation() + [{"role": "user", "content": "Which of these did you like most?"}]
        client.chat.completions.create(model="m", messages=turn, temperature=0, max_tokens=8)
        requests.post(f"{server.url}/v1/models/other/load", timeout=900).raise_for_status()  # m is unloaded
        requests.post(f"{server.url}/v1/models/m/load", timeout=900).raise_for_status()
        first, prompt, cached = ttft(client, turn[:-1] + [{"role": "user", "content": "Say more about maps."}])
        return {"ttft": first, "prompt_tokens": prompt, "cached_tokens": cached,
                "disk": server.health()["prompt_cache_disk"]}


def alternating(model_dir: Path, budget: str, rounds: int) -> dict:
    from testkit.live import LiveServer

    env = {"MLX_SERVER_MEMORY_BUDGET": budget} if budget else {}
    with tempfile.TemporaryDirectory() as tmp, LiveServer(Path(tmp), models(model_dir), env).start() as server:
        client = server.openai(timeout=900)

        def agent(i: int) -> None:
            for r in range(rounds):
                model = ("m", "other")[(i + r) % 2]
                client.chat.completions.create(model=model, messages=[{"role": "user", "content": f"Hi {i}.{r}"}],
                                               temperature=0, max_tokens=8)

        started = time.perf_counter()
        agents = [threading.Thread(target=agent, args=(i,)) for i in range(4)]
        for a in agents:
            a.start()
        for a in agents:
            a.join()
        seconds = time.perf_counter() - started
        health = server.health()
        return {"seconds": seconds, "swaps": health["swaps"], "resident": [m["id"] for m in health["resident"]]}


def disk_rates(gigabytes: float) -> dict:
    import mlx.core as mx
    from mlx_lm.models.cache import KVCache

    from inference.engine.disk_cache import DiskPromptCache

    tokens = int(gigabytes * 2**30 / (30 * 2 * 3 * 64 * 4))  # SmolLM2's KV shape, float32
    caches = []
    for _ in range(30):
        cache = KVCache()
        cache.update_and_fetch(mx.zeros((1, 3, tokens, 64)), mx.zeros((1, 3, tokens, 64)))
        caches.append(cache)
    mx.eval([c.state for c in caches])
    size = sum(c.nbytes for c in caches) / 2**30
    with tempfile.TemporaryDirectory() as tmp:
        disk = DiskPromptCache(Path(tmp), 1 << 40)
        started = time.perf_counter()
        disk.shelf("m", "f").save([(("m",), list(range(tokens)), caches)])
        write = time.perf_counter() - started
        started = time.perf_counter()
        _, loaded = disk.shelf("m", "f").fetch(("m",), list(range(tokens + 1)), better_than=0)
        mx.eval([c.state for c in loaded])
        read = time.perf_counter() - started
    return {"gigabytes": round(size, 3), "write_s_per_gb": write / size, "read_s_per_gb": read / size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--rounds", type=int, default=3, help="requests per client in the alternating stage")
    parser.add_argument("--disk-gb", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=Path("bench/results/residency.json"))
    args = parser.parse_args()
    model_dir = args.model_dir or default_model_dir()
    cold, warm = swap_back(model_dir, disk=False), swap_back(model_dir, disk=True)
    one = alternating(model_dir, "", args.rounds)
    two = alternating(model_dir, str(4 * sum(f.stat().st_size for f in model_dir.glob("*.safetensors"))), args.rounds)
    rates = disk_rates(args.disk_gb)
    result = {**machine_info(), "model_dir": str(model_dir), "swap_back": {"without_disk": cold, "with_disk": warm},
              "ttft_ratio": warm["ttft"] / cold["ttft"], "alternating": {"one_model": one, "budget_two": two},
              "alternating_ratio": two["seconds"] / one["seconds"], "disk": rates}
    print(f"follow-up turn after a swap away and back ({warm['prompt_tokens']} prompt tokens): TTFT "
          f"{warm['ttft']:.2f}s with the disk cache ({warm['cached_tokens']} cached) vs {cold['ttft']:.2f}s "
          f"without ({cold['cached_tokens']} cached): ratio {result['ttft_ratio']:.3f} (goal <= 0.2)")
    print(f"4 clients x {args.rounds} alternating two models: {two['seconds']:.1f}s with a budget holding both "
          f"({two['swaps']} swaps) vs {one['seconds']:.1f}s one model at a time ({one['swaps']} swaps): "
          f"ratio {result['alternating_ratio']:.3f}")
    print(f"disk cache, {rates['gigabytes']} GB of KV: write {rates['write_s_per_gb']:.2f} s/GB, "
          f"read {rates['read_s_per_gb']:.2f} s/GB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Prefix cache: time to first token of turn N+1 of a ~2,000-token conversation with the
cache over the same request cold (a second server with MLX_SERVER_PROMPT_CACHE=0), both
measured in this one run; plus a shared long system prompt across different users.

    .venv/bin/python -m bench.prefix_cache [--model-dir DIR] [--reps 5]
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import default_model_dir, machine_info

TOPICS = ["lighthouses", "tides", "sailing knots", "whales", "coral reefs", "storms", "maps", "harbours"]
FILLER = ("It is a long story with many details about {t}, their history, the people who "
          "studied them and the small facts that make them interesting to a curious reader. ")


def history() -> list[dict]:
    messages = [{"role": "system", "content": "You are a patient assistant who remembers the whole conversation."}]
    for topic in TOPICS:
        messages.append({"role": "user", "content": f"Tell me about {topic}."})
        messages.append({"role": "assistant", "content": FILLER.format(t=topic) * 5})
    return messages


def ttft(client, messages) -> tuple[float, int, int]:
    started = time.perf_counter()
    first, usage = None, None
    for chunk in client.chat.completions.create(
        model="m", messages=messages, temperature=0, max_tokens=8, stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.usage:
            usage = chunk.usage
        elif first is None and chunk.choices and chunk.choices[0].delta.content:  # not the role chunk
            first = time.perf_counter() - started
    return first, usage.prompt_tokens, usage.prompt_tokens_details.cached_tokens


def run_server(model_dir: Path, cache_on: bool, reps: int) -> dict:
    from testkit.live import LiveServer

    env = {"MLX_SERVER_PROMPT_CACHE": "1" if cache_on else "0"}
    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer(Path(tmp), {"models": [{"id": "m", "source": {"path": str(model_dir)}}]}, env).start()
        try:
            client = server.openai(api_key="x", timeout=600)
            ttft(client, [{"role": "user", "content": "warm up"}])
            base = history() + [{"role": "user", "content": "Which of these did you like most?"}]
            answer = client.chat.completions.create(model="m", messages=base, temperature=0, max_tokens=32)
            turn = base + [{"role": "assistant", "content": answer.choices[0].message.content}]
            chat = [ttft(client, turn + [{"role": "user", "content": f"Say more about {t}."}]) for t in TOPICS[:reps]]
            system = {"role": "system", "content": FILLER.format(t="house rules") * 25}
            users = [ttft(client, [system, {"role": "user", "content": f"I am user {i}. Hello!"}])
                     for i in range(reps + 1)][1:]
            memory = server.health()
        finally:
            server.stop()
    return {"chat": chat, "shared_system": users, "prompt_cache": memory.get("prompt_cache"),
            "peak_bytes": memory["memory"]["peak_bytes"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/results/prefix_cache.json"))
    args = parser.parse_args()
    model_dir = args.model_dir or default_model_dir()
    cold = run_server(model_dir, False, args.reps)
    warm = run_server(model_dir, True, args.reps)
    result = {**machine_info(), "model_dir": str(model_dir), "reps": args.reps, "cold": cold, "cached": warm}
    for case in ("chat", "shared_system"):
        c = statistics.median(r[0] for r in cold[case])
        w = statistics.median(r[0] for r in warm[case])
        result[f"{case}_ratio"] = c / w
        prompt = warm[case][0][1]
        hit = statistics.median(r[2] for r in warm[case])
        print(f"{case:14} prompt {prompt:5d} tok, cached {hit:5.0f}: TTFT cold {c * 1000:8.1f} ms, "
              f"cached {w * 1000:7.1f} ms, cold/cached = {c / w:5.1f}")
    print(f"prompt cache held {warm['prompt_cache']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

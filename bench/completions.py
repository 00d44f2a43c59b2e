"""Legacy completions against chat completions, in one run on one server: decode tokens/s of
`/v1/completions` over `/v1/chat/completions` on the same model, the same prompt and the same
number of tokens (goal >= 0.97).

    .venv/bin/python -m bench.completions [--model-dir DIR] [--reps 5] [--tokens 64]

The completions prompt is the chat request's prompt as the chat template renders it, so both
prefill the same tokens and decode from the same state; the end of sequence is banned so every
request makes --tokens tokens. Decode tokens/s is the engine's figure per request (the request
log's decode_tps); the two endpoints take turns rep by rep, so load on the machine hits them
alike, and each figure is the median of its reps. Without --model-dir it uses
SmolLM2-135M-Instruct from var/test-cache.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from bench.common import PROMPT, default_model_dir, end_ids, machine_info


def run(model_dir: Path, reps: int, tokens: int) -> dict[str, list[float]]:
    from mlx_lm.utils import load_tokenizer

    from testkit.live import LiveServer

    tokenizer = load_tokenizer(model_dir)
    ban = {str(i): -100 for i in end_ids(tokenizer)}
    rendered = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=False)
    shared = {"model": "m", "max_tokens": tokens, "logit_bias": ban, "temperature": 1.0}
    runs: dict[str, list[float]] = {"chat": [], "completions": []}
    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer(Path(tmp), {"models": [{"id": "m", "source": {"path": str(model_dir)}}]}).start()
        try:
            client = server.openai(timeout=600)
            for rep in range(reps + 1):  # the first round warms up
                chat = client.chat.completions.create(messages=PROMPT, **shared)
                chat_tps = server.log_rows()[-1]["decode_tps"]
                done = client.completions.create(prompt=rendered, **shared)
                done_tps = server.log_rows()[-1]["decode_tps"]
                assert chat.usage.prompt_tokens == done.usage.prompt_tokens, (chat.usage, done.usage)
                assert chat.usage.completion_tokens == done.usage.completion_tokens == tokens
                if rep:
                    runs["chat"].append(chat_tps)
                    runs["completions"].append(done_tps)
        finally:
            server.stop()
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("bench/results/completions.json"))
    args = parser.parse_args()
    model_dir = args.model_dir or default_model_dir()
    runs = run(model_dir, args.reps, args.tokens)
    tps = {name: statistics.median(values) for name, values in runs.items()}
    ratio = tps["completions"] / tps["chat"]
    info = machine_info()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**info, "load_average_after": os.getloadavg(), "model_dir": str(model_dir),
                                    "reps": args.reps, "tokens": args.tokens, "tokens_per_s": tps,
                                    "completions_over_chat_decode": ratio, "runs": runs}, indent=2))
    print(f"{info['machine']}, {info['device']}, versions {info['versions']}")
    for name, value in tps.items():
        print(f"{name:12}{value:>10.1f} tok/s")
    print(f"completions/chat decode {ratio:>7.3f}")


if __name__ == "__main__":
    main()

"""What two chat features cost, in one run on one server: decode tokens/s with `logprobs: true,
top_logprobs: 5` over the same requests without, and the aggregate tokens/s of one `n: 4`
request over four requests one after another.

    .venv/bin/python -m bench.chat_features [--model-dir DIR] [--reps 3] [--tokens 64] [--batch 4]

Decode tokens/s is the engine's figure per request (the request log's decode_tps). Aggregate
tokens/s is completion tokens over wall time, client side: `n: 4` is one request whose four
choices the batch decoder runs together (MLX_SERVER_BATCH_SIZE=--batch; no seed, since a
seeded request decodes alone); the baseline is four single requests in a row on the same
server. The end of sequence is banned so every request makes --tokens tokens; the modes take
turns rep by rep, so load on the machine hits them alike. Without --model-dir it uses
SmolLM2-135M-Instruct from var/test-cache.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import PROMPT, default_model_dir, end_ids, machine_info


def run(model_dir: Path, reps: int, tokens: int, batch: int) -> dict[str, list[dict]]:
    from mlx_lm.utils import load_tokenizer

    from testkit.live import LiveServer

    ban = {str(i): -100 for i in end_ids(load_tokenizer(model_dir))}
    body = {"model": "m", "messages": PROMPT, "max_tokens": tokens, "logit_bias": ban, "temperature": 1.0}
    runs: dict[str, list[dict]] = {"plain": [], "logprobs": [], "n4": [], "sequential4": []}
    with tempfile.TemporaryDirectory() as tmp:
        registry = {"models": [{"id": "m", "source": {"path": str(model_dir)}}]}
        server = LiveServer(Path(tmp), registry, env={"MLX_SERVER_BATCH_SIZE": str(batch)}).start()
        try:
            client = server.openai(timeout=600)
            for rep in range(reps + 1):  # the first round warms up
                plain = client.chat.completions.create(**body)
                plain_tps = server.log_rows()[-1]["decode_tps"]
                scored = client.chat.completions.create(**body, logprobs=True, top_logprobs=5)
                scored_tps = server.log_rows()[-1]["decode_tps"]
                assert len(scored.choices[0].logprobs.content) == scored.usage.completion_tokens
                t0 = time.perf_counter()
                together = client.chat.completions.create(**body, n=4)
                n4_wall = time.perf_counter() - t0
                t0 = time.perf_counter()
                alone = [client.chat.completions.create(**body) for _ in range(4)]
                seq_wall = time.perf_counter() - t0
                if rep:
                    runs["plain"].append({"tps": plain_tps, "tokens": plain.usage.completion_tokens})
                    runs["logprobs"].append({"tps": scored_tps, "tokens": scored.usage.completion_tokens})
                    runs["n4"].append({"tps": together.usage.completion_tokens / n4_wall,
                                       "tokens": together.usage.completion_tokens, "wall": n4_wall})
                    made = sum(r.usage.completion_tokens for r in alone)
                    runs["sequential4"].append({"tps": made / seq_wall, "tokens": made, "wall": seq_wall})
        finally:
            server.stop()
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("bench/results/chat_features.json"))
    args = parser.parse_args()
    model_dir = args.model_dir or default_model_dir()
    runs = run(model_dir, args.reps, args.tokens, args.batch)
    tps = {name: statistics.median(r["tps"] for r in rs) for name, rs in runs.items()}
    ratios = {"logprobs_top5_over_plain_decode": tps["logprobs"] / tps["plain"],
              "n4_over_4_sequential_aggregate": tps["n4"] / tps["sequential4"]}
    info = machine_info()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**info, "load_average_after": os.getloadavg(), "model_dir": str(model_dir), "reps": args.reps, "tokens": args.tokens,
                                    "batch_size": args.batch, "tokens_per_s": tps, "ratios": ratios,
                                    "runs": runs}, indent=2))
    print(f"{info['machine']}, {info['device']}, versions {info['versions']}")
    for name, value in tps.items():
        print(f"{name:12}{value:>10.1f} tok/s")
    for name, value in ratios.items():
        print(f"{name:36}{value:>7.3f}")


if __name__ == "__main__":
    main()

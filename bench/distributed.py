"""Decode speed of one model over two ranks of an mx.distributed ring on loopback against the
same model in one process (issue 23), through the server: `manage.py runserver` as rank 0 and
rank 1 (testkit.live.DistributedServer), SmolLM2 split by tensor and by pipeline parallelism,
greedy, interleaved rounds, medians. On one machine the two ranks share its cores, so the
ratio holds the link's cost (collectives per layer for tensor, one send/recv per token for
pipeline) and the cores' sharing; the per-rank BLAS thread count is varied to show the second.

    .venv/bin/python -m bench.distributed [--rounds 5] [--tokens 128]
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from bench.common import PROMPT, end_ids, machine_info, stream_once
from testkit.cache import SMOLLM2_SOURCE, cached_gguf, imported

TENSOR, PIPELINE = "smollm2-tensor", "smollm2-pipeline"


def models(model_dir: Path) -> dict:
    source = {"path": str(model_dir)}
    return {"default": TENSOR, "models": [
        {"id": TENSOR, "source": source, "context_length": 4096, "distributed": {"parallel": "tensor"}},
        {"id": PIPELINE, "source": source, "context_length": 4096, "distributed": {"parallel": "pipeline"}}]}


def main() -> None:
    from testkit.live import DistributedServer, LiveServer

    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--dtype", default="float32", help="of the SmolLM2 import (float32: the CPU default)")
    args = parser.parse_args()
    model_dir = imported(cached_gguf(SMOLLM2_SOURCE), args.dtype)
    from mlx_lm.utils import load_tokenizer

    ban = {str(i): -100 for i in end_ids(load_tokenizer(model_dir))}  # every run makes `tokens` tokens
    result = {"bench": "distributed", **machine_info(), "model": model_dir.name, "tokens": args.tokens,
              "rounds": args.rounds, "configs": {}}
    configs = {"1 rank": None, "2 ranks": {}, "2 ranks, 1 BLAS thread each": {"MLX_SERVER_BLAS_THREADS": "1"}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, env in configs.items():
            root = Path(tmp) / name.replace(" ", "_").replace(",", "")
            root.mkdir()
            server = (LiveServer(root, models(model_dir)) if env is None
                      else DistributedServer(root, models(model_dir), ranks=2, env=env))
            with server.start():
                client = server.openai(timeout=900)
                rates = {}
                for model in (TENSOR, PIPELINE):
                    stream_once(client, model, 16, ban)  # load and warm up
                    runs = [stream_once(client, model, args.tokens, ban, PROMPT) for _ in range(args.rounds)]
                    rates[model] = {"tps_median": round(statistics.median(r["tps"] for r in runs), 2),
                                    "tps_all": [round(r["tps"], 2) for r in runs],
                                    "tokens": [r["tokens"] for r in runs]}
                result["configs"][name] = rates
            print(json.dumps({name: rates}), flush=True)
    alone = result["configs"]["1 rank"]
    result["ratios_2_over_1"] = {
        name: {m: round(rates[m]["tps_median"] / alone[m]["tps_median"], 3) for m in (TENSOR, PIPELINE)}
        for name, rates in result["configs"].items() if name != "1 rank"}
    print(json.dumps(result, indent=2))
    out = Path(__file__).with_name("results") / "distributed-loopback.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Whether a lone request loses by running on mlx-lm's BatchGenerator (what it gets with
MLX_SERVER_BATCH_SIZE > 1, the GPU default) rather than on generate_step (batch size 1): the
same prompt decoded alone both ways, interleaved pairs (ABBA), per-token rates, on a random-
weight mlx-lm model built in memory at a real shape (no files, no tokenizer: prompt and output
are token ids; nothing stops a run before `--tokens`).

    python -m bench.lone_decode [--shape qwen3-4b|tiny] [--bits 4] [--tokens 128] [--pairs 8]
"""
from __future__ import annotations

import argparse
import json
import time

from bench.gpu import drift, median, spread, token_rates

# Qwen3-VL 4B's text_config (the language model bench.gpu's Qwen3-VL build carries), and a tiny one.
SHAPES = {
    "qwen3-4b": dict(hidden_size=2560, num_hidden_layers=36, intermediate_size=9728, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=128, vocab_size=151936, rope_theta=5000000.0,
                     max_position_embeddings=262144),
    "tiny": dict(hidden_size=64, num_hidden_layers=2, intermediate_size=128, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, vocab_size=512, rope_theta=10000.0,
                 max_position_embeddings=4096),
}


def build(shape: str, bits: int | None):
    import mlx.core as mx
    import mlx.nn as nn
    from mlx_lm.models import qwen3

    model = qwen3.Model(qwen3.ModelArgs(model_type="qwen3", rms_norm_eps=1e-6, tie_word_embeddings=True,
                                        **SHAPES[shape]))
    model.set_dtype(mx.bfloat16)
    if bits:
        nn.quantize(model, group_size=64, bits=bits)
    mx.eval(model.parameters())
    return model


def alone(model, prompt: list[int], tokens: int) -> list[float]:
    import mlx.core as mx
    from mlx_lm.generate import generate_step
    from mlx_lm.sample_utils import make_sampler

    times = []
    for _ in generate_step(mx.array(prompt), model, max_tokens=tokens, sampler=make_sampler(0.0)):
        times.append(time.perf_counter())
    return times


def batched(model, prompt: list[int], tokens: int) -> list[float]:
    from mlx_lm.generate import BatchGenerator
    from mlx_lm.models.cache import make_prompt_cache
    from mlx_lm.sample_utils import make_sampler

    gen = BatchGenerator(model, stop_tokens=[], completion_batch_size=8, prefill_batch_size=8)
    times = []
    try:
        gen.insert([prompt], max_tokens=[tokens], caches=[make_prompt_cache(model)], samplers=[make_sampler(0.0)])
        while len(times) < tokens:
            _, responses = gen.next()
            for _ in responses:
                times.append(time.perf_counter())
            if any(r.finish_reason for r in responses):
                break
    finally:
        gen.close()
    return times


def main() -> None:
    import mlx.core as mx

    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", default="qwen3-4b", choices=list(SHAPES))
    parser.add_argument("--bits", type=int, default=4, help="0: bfloat16")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--pairs", type=int, default=8)
    args = parser.parse_args()
    model = build(args.shape, args.bits or None)
    prompt = [(7 + 31 * i) % (SHAPES[args.shape]["vocab_size"] - 1) + 1 for i in range(32)]
    alone(model, prompt, 8), batched(model, prompt, 8)  # kernels compiled before anything is timed
    runs = {"generate_step": [], "BatchGenerator": []}
    for i in range(args.pairs):
        order = (("generate_step", alone), ("BatchGenerator", batched))
        for name, run in order if i % 2 == 0 else order[::-1]:
            runs[name].append(token_rates(run(model, prompt, args.tokens)))
    ratios = [b["tps"] / a["tps"] for a, b in zip(runs["generate_step"], runs["BatchGenerator"])]
    print(json.dumps({
        "bench": "lone_decode", "device": str(mx.default_device()), "shape": args.shape, "bits": args.bits,
        "tokens": args.tokens, "pairs": args.pairs,
        "generate_step_tps": median([r["tps"] for r in runs["generate_step"]]),
        "batch_generator_tps": median([r["tps"] for r in runs["BatchGenerator"]]),
        "batch_over_alone": spread(ratios), "drift_generate_step": drift([r["tps"] for r in runs["generate_step"]]),
        "runs": runs,
    }, indent=1))


if __name__ == "__main__":
    main()

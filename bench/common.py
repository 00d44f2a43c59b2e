"""What the benches share: the default model folder, the machine's description, one streamed
request through any OpenAI-compatible server (ours or a peer's) and the medians of its runs."""
from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

from testkit.cache import SMOLLM2_SOURCE, cached_gguf, imported

PROMPT = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]


def end_ids(tokenizer) -> list[int]:
    """Every token that ends a turn: the end-of-sequence ids and the chat templates' end markers
    (SmolLM2's <|im_end|>, Gemma's <end_of_turn>) where the vocabulary has them."""
    ids = set(tokenizer.eos_token_ids)
    for name in ("<|im_end|>", "<end_of_turn>", "<eos>"):
        token = tokenizer.convert_tokens_to_ids(name)
        if isinstance(token, int) and token >= 0 and token != tokenizer.unk_token_id:
            ids.add(token)
    return sorted(ids)


def stream_once(client, model: str, tokens: int, ban: dict, messages: list[dict] = PROMPT) -> dict:
    """One greedy streamed request through any OpenAI-compatible server (ours or a peer's):
    time to first token, decode tokens/s, tokens made and the request's whole wall time."""
    t0 = time.perf_counter()
    times, usage = [], None
    for chunk in client.chat.completions.create(
        model=model, messages=messages, temperature=0, max_tokens=tokens, logit_bias=ban,
        stream=True, stream_options={"include_usage": True},
    ):
        if chunk.usage:
            usage = chunk.usage
        elif chunk.choices and chunk.choices[0].delta.content:
            times.append(time.perf_counter())
    if not times:
        raise RuntimeError(f"{model}: the stream ended without any content (usage {usage})")
    n = usage.completion_tokens if usage else len(times)  # a peer may send no usage chunk
    return {"ttft": times[0] - t0, "tps": (n - 1) / max(times[-1] - times[0], 1e-9), "tokens": n,
            "wall": times[-1] - t0, "prompt_tokens": usage.prompt_tokens if usage else None}


def default_model_dir() -> Path:
    """SmolLM2-135M-Instruct (bf16), the test suite's own import in var/test-cache (not a second copy)."""
    return imported(cached_gguf(SMOLLM2_SOURCE), "bfloat16")


def machine_info() -> dict:
    import mlx.core as mx
    import mlx_lm

    return {
        "machine": f"{platform.machine()} {platform.system()} ({os.cpu_count()} cores)",
        "device": str(mx.default_device()),
        "versions": {"mlx": mx.__version__, "mlx_lm": mlx_lm.__version__, "python": platform.python_version()},
    }


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)

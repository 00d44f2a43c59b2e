"""Cost of constrained decoding: decode tokens/s through our server with a response_format
schema or a forced tool call, over the same server without one. One server, one model
(registered with the qwen_tool_call format, which only the forced call uses); the modes
take turns rep by rep so that load on the machine hits them alike.

    .venv/bin/python -m bench.constrained [--model-dir DIR] [--backend text] [--reps 5] [--tokens 128]

Decode tokens/s is the engine's own figure for each request (the request log's decode_tps:
tokens after the first over the time since the first), so the mask's per-token cost is in
it and the HTTP layer is not. Free runs ban the end of sequence and make --tokens tokens;
constrained runs end when their document does (the schema bounds it). Without --model-dir
it imports SmolLM2-135M-Instruct (bf16) into var/test-cache first. A tiny fixture
(`--model-dir var/test-cache/models/tiny-qwen3-vl --backend vision`) is the worst case: its
forward pass is so cheap that the mask's share of each token is largest.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from bench.common import default_model_dir, machine_info
from testkit.schemas import PROFILE_SCHEMA

PROMPT = [{"role": "user", "content": "Invent a user profile for a French editor, as JSON."}]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "maxLength": 20}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"]}}}]


def modes(ban: dict[str, int], tokens: int) -> dict[str, dict]:
    """Request bodies by mode name; `free` is the baseline the others are divided by."""
    return {
        "free": {"model": "m", "messages": PROMPT, "max_tokens": tokens, "logit_bias": ban},
        "json_schema": {"model": "m", "messages": PROMPT, "max_tokens": 400, "response_format": {
            "type": "json_schema", "json_schema": {"name": "profile", "schema": PROFILE_SCHEMA, "strict": True}}},
        "json_object": {"model": "m", "messages": PROMPT, "max_tokens": tokens, "logit_bias": ban,
                        "response_format": {"type": "json_object"}},
        "tool_required": {"model": "m", "messages": [{"role": "user", "content": "Weather in Paris?"}],
                          "max_tokens": 200, "tools": TOOLS, "tool_choice": "required",
                          "parallel_tool_calls": False},
    }


def end_token_ban(model_dir: Path) -> dict[str, int]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    ids = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
    return {str(i): -100 for i in ids if isinstance(i, int) and i >= 0}


def run(model_dir: Path, backend: str, reps: int, tokens: int) -> dict[str, list[dict]]:
    from testkit.live import LiveServer

    bodies = modes(end_token_ban(model_dir), tokens)
    runs: dict[str, list[dict]] = {name: [] for name in bodies}
    with tempfile.TemporaryDirectory() as tmp:
        registry = {"models": [
            {"id": "m", "source": {"path": str(model_dir)}, "backend": backend, "tool_format": "qwen_tool_call"},
        ]}
        server = LiveServer(Path(tmp), registry).start()
        try:
            client = server.openai(api_key="x", timeout=600)
            for rep in range(reps + 1):  # the first round warms up (and builds each grammar once)
                for name, body in bodies.items():
                    response = client.chat.completions.create(temperature=0, seed=rep, **body)
                    row = server.log_rows()[-1]
                    if rep:
                        runs[name].append({"tps": row["decode_tps"], "tokens": response.usage.completion_tokens,
                                           "finish": response.choices[0].finish_reason})
        finally:
            server.stop()
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--backend", choices=("text", "vision"), default="text")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path("bench/results/constrained.json"))
    args = parser.parse_args()
    model_dir = args.model_dir or default_model_dir()
    runs = run(model_dir, args.backend, args.reps, args.tokens)
    free = statistics.median(r["tps"] for r in runs["free"])
    summary = {name: {"decode_tps": statistics.median(r["tps"] for r in rs),
                      "tokens": statistics.median(r["tokens"] for r in rs),
                      "ratio_to_free": statistics.median(r["tps"] for r in rs) / free} for name, rs in runs.items()}
    info = machine_info()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**info, "model_dir": str(model_dir), "backend": args.backend, "reps": args.reps,
                                    "summary": summary, "runs": runs}, indent=2))
    print(f"{info['machine']}, {info['device']}, versions {info['versions']}")
    print(f"{'mode':15}{'tokens':>8}{'decode tok/s':>14}{'vs free':>9}")
    for name, s in summary.items():
        print(f"{name:15}{s['tokens']:>8.0f}{s['decode_tps']:>14.1f}{s['ratio_to_free']:>9.3f}")


if __name__ == "__main__":
    main()

"""Server overhead on one model folder, measured in one run: decode tokens/s and time to
first token through our server (openai SDK, streamed) over raw `mlx_lm.stream_generate`,
plus load time. Greedy, end-of-sequence banned so every run makes the same token count.

    .venv/bin/python -m bench.overhead [--model-dir DIR] [--tokens 128] [--reps 5]

Without --model-dir it imports SmolLM2-135M-Instruct (bf16) into var/test-cache first.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench.common import PROMPT, default_model_dir, end_ids, machine_info, median, stream_once


class RawMlxLm:
    """The baseline: `mlx_lm.stream_generate` in this process on the same folder and prompt,
    with the same greedy sampler and end-of-sequence ban as the server requests."""

    def __init__(self, model_dir: Path):
        from mlx_lm import load
        from mlx_lm.sample_utils import make_logits_processors

        started = time.perf_counter()
        self.model, self.tokenizer = load(str(model_dir))
        self.load_s = time.perf_counter() - started
        self.prompt = self.tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True)
        self.ban = {str(i): -100 for i in end_ids(self.tokenizer)}
        self._processors = make_logits_processors(logit_bias={i: -100.0 for i in end_ids(self.tokenizer)})

    def run(self, tokens: int) -> dict:
        from mlx_lm import stream_generate
        from mlx_lm.sample_utils import make_sampler

        t0 = time.perf_counter()
        times = [time.perf_counter() for _ in stream_generate(
            self.model, self.tokenizer, self.prompt, max_tokens=tokens, sampler=make_sampler(0.0),
            logits_processors=self._processors)]
        return {"ttft": times[0] - t0, "tps": (len(times) - 1) / (times[-1] - times[0]), "tokens": len(times)}


def interleaved_runs(model_dir: Path, tokens: int, reps: int) -> dict:
    """Raw mlx-lm and our server (prompt cache off, so both prefill the same prompt), one run
    each per round after a warm-up of both, so a change in the machine's load hits both alike."""
    from testkit.live import LiveServer

    raw = RawMlxLm(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer(Path(tmp), {"models": [{"id": "m", "source": {"path": str(model_dir)}}]},
                            {"MLX_SERVER_PROMPT_CACHE": "0"}).start()
        try:
            client = server.openai(api_key="x", timeout=600)
            raw.run(tokens), stream_once(client, "m", tokens, raw.ban)  # warm-up
            rounds = [(raw.run(tokens), stream_once(client, "m", tokens, raw.ban)) for _ in range(reps)]
            load_s = server.health()["load_seconds"]
        finally:
            server.stop()
    return {"raw": {"load_s": raw.load_s, "runs": [r for r, _ in rounds]},
            "server": {"load_s": load_s, "runs": [s for _, s in rounds]},
            "ban": raw.ban}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/results/overhead.json"))
    args = parser.parse_args()
    model_dir = args.model_dir or default_model_dir()
    runs = interleaved_runs(model_dir, args.tokens, args.reps)
    raw, ours = runs["raw"], runs["server"]
    info = machine_info()
    result = {
        **info,
        "model_dir": str(model_dir), "tokens": args.tokens, "reps": args.reps,
        "raw": raw, "server": ours,
        "decode_ratio": median(ours["runs"], "tps") / median(raw["runs"], "tps"),
        "ttft_ratio": median(ours["runs"], "ttft") / median(raw["runs"], "ttft"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"{info['machine']}, {info['device']}, versions {info['versions']}")
    print(f"{'':12}{'load s':>10}{'TTFT ms':>10}{'decode tok/s':>14}")
    for name, data in (("raw mlx-lm", raw), ("server", ours)):
        print(f"{name:12}{data['load_s']:>10.2f}{median(data['runs'], 'ttft') * 1000:>10.1f}"
              f"{median(data['runs'], 'tps'):>14.1f}")
    print(f"decode server/raw = {result['decode_ratio']:.3f}   TTFT server/raw = {result['ttft_ratio']:.3f}")


if __name__ == "__main__":
    main()

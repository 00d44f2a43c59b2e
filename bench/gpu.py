"""The server on a GPU (MLX's CUDA backend), measured on full-size random-weight models of the
seed's two vision architectures (Gemma 3 4B and Qwen3-VL 4B shapes), 4-bit and bfloat16:

- decode tokens/s through our server (Daphne + Django + the engine, streamed over HTTP) over
  raw `mlx_vlm.stream_generate` on the same folder, and over raw `mlx_lm.stream_generate` on
  the same weights as a text model (the language model's arrays under mlx-lm's own class: a
  text model of the same shape). Both sides are timed per token (each SSE chunk's arrival,
  each token the raw generator yields): a run's rate is 1 / its median gap between tokens, so
  prefill and one-off stalls fall out; many pairs alternate raw and server (ABBA), and the
  spread of the pairs' ratios (quartiles) and the machine's drift (raw's rate over the last
  third of the pairs / the first third) are reported beside the medians;
- time to first token of an ~8k-token prompt, cold and as a follow-up turn that reuses the
  server's prefix cache (raw mlx-vlm's cold TTFT beside it);
- swap time between the two 4B models through the server over raw `mlx_vlm.load` time;
- decode rate over the bandwidth floor (weight bytes / the GPU's datasheet bandwidth: H200
  4.8 TB/s, H100 3.35 TB/s, read from the device name);
- aggregate decode tok/s of 8 concurrent clients over one, with MLX_SERVER_BATCH_SIZE=8
  (text-only requests to a vision model batch on mlx-lm's class: backends/vision_text.py).

    python -m bench.gpu --models-dir /tmp/gpu-models --tokenizer-from DIR --out bench/results/gpu.json

--tokenizer-from names a folder holding built tiny fixtures (tiny-gemma3-vision, tiny-qwen3-vl)
whose tokenizers the full-size builds reuse, for a machine without the GGUF sources. Greedy,
end-of-sequence banned (logit_bias, the same in both paths) so every run makes the same token
count. Raw and server runs alternate (raw mlx-vlm in this process, the server in its own, both
holding the model), the order flipped each repetition, so drift in the machine's speed falls on
both. Results are written after every stage and a rerun skips the stages already in --out,
so a run cut short by a time limit can be continued.
"""
from __future__ import annotations

import argparse
import gc
import http.client
import json
import os
import platform
import random
import statistics
import struct
import subprocess
import tempfile
import time
import traceback
from pathlib import Path

# Memory bandwidth by GPU name (the vendors' datasheets): the floor is weight bytes / this.
HBM_BYTES_PER_S = {"H200": 4.8e12, "H100": 3.35e12}
CLIENTS = 8  # concurrent clients of the batching stage
FAMILIES = {"gemma3": "tiny-gemma3-vision", "qwen3-vl": "tiny-qwen3-vl"}
DTYPES = {"4bit": 4, "bf16": None}
def short(i: int) -> list[dict]:
    """A short prompt of the same length every time, never a prefix-cache hit of another."""
    return [{"role": "user", "content": f"Story {100 + i}: write a long story about a lighthouse keeper."}]
WORDS = (
    "the harbour light keeper wrote about storms ships gulls rocks tides lanterns oil brass rope "
    "winter summer night morning coast island village fisherman nets boats waves wind rain fog "
    "bell signal tower stairs window glass lens clock letters supply steamer captain crew cargo "
    "north south east west river cliff sand shells salt bread tea candle book map compass star"
).split()


# --- helpers ---------------------------------------------------------------------------------


def load_results(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def save_results(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(path)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def device_info() -> dict:
    import mlx.core as mx
    import mlx_lm
    import mlx_vlm

    info = {
        "machine": f"{platform.machine()} {platform.system()} ({os.cpu_count()} cores)",
        "mlx_device": str(mx.default_device()),
        "versions": {"mlx": mx.__version__, "mlx_lm": mlx_lm.__version__, "mlx_vlm": mlx_vlm.__version__,
                     "python": platform.python_version()},
    }
    try:
        info["mlx_device_info"] = {k: v for k, v in mx.device_info().items() if isinstance(v, (str, int, float))}
    except Exception:  # older MLX
        pass
    try:
        info["gpu"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["gpu"] = None
    return info


def bandwidth(info: dict) -> float:
    """The GPU's memory bandwidth by its name (the H100's where it is unknown)."""
    name = str(info.get("gpu") or "")
    return next((bw for key, bw in HBM_BYTES_PER_S.items() if key in name), HBM_BYTES_PER_S["H100"])


def weight_bytes(folder: Path) -> dict:
    """Bytes of the tensors in the folder's safetensors files: all, and the language model's
    (what a decode step reads: everything but the vision tower and projector)."""
    total = language = 0
    for file in sorted(Path(folder).glob("*.safetensors")):
        with file.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            size = meta["data_offsets"][1] - meta["data_offsets"][0]
            total += size
            if name.startswith("language_model."):
                language += size
    return {"total": total, "language_model": language}


def end_ids(folder: Path) -> list[int]:
    config = json.loads((Path(folder) / "config.json").read_text())
    ids = config.get("eos_token_id") or []
    return sorted({ids} if isinstance(ids, int) else set(ids))


def n_tokens(tokenizer, messages: list[dict]) -> int:
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return len(tokenizer.encode(text, add_special_tokens=False))


def long_messages(tokenizer, target: int, nonce: str) -> list[dict]:
    """A user turn of about `target` tokens under the model's chat template, starting with
    `nonce` so that no two cold prompts share a prefix."""
    rng = random.Random(nonce)

    def messages(n_words: int) -> list[dict]:
        words = [rng.choice(WORDS) for _ in range(n_words)]
        rng.seed(nonce)
        return [{"role": "user", "content": f"{nonce}. Summarise these notes: " + " ".join(words)}]

    def count(msgs: list[dict]) -> int:
        return n_tokens(tokenizer, msgs)

    n = int(target * 0.8)
    for _ in range(4):
        got = max(1, count(messages(n)))
        if abs(got - target) <= 16:
            break
        n = max(16, int(n * target / got))
    return messages(n)


# --- building --------------------------------------------------------------------------------


def build(models_dir: Path, tokenizer_from: Path | None, size: str, dtype: str, results: dict) -> dict[str, Path]:
    from registry.fixtures.models import build_full_size, full_size_name

    folders = {}
    for family, fixture in FAMILIES.items():
        bits = DTYPES[dtype]
        name = full_size_name(fixture, size, bits)
        started = time.perf_counter()
        folder = build_full_size(
            fixture, models_dir / name, size=size, bits=bits,
            tokenizer_dir=tokenizer_from / fixture if tokenizer_from else None,
            cache_dir=Path(os.environ.get("MLX_SERVER_DOWNLOADS_DIR", "var/test-cache/downloads")),
        )
        folders[family] = folder
        key = f"{family}/{dtype}"
        if key not in results.setdefault("models", {}):
            manifest = json.loads((folder / "fixture.json").read_text())
            results["models"][key] = {
                "name": name, "folder": str(folder), "weight_bytes": weight_bytes(folder),
                "build_seconds": manifest.get("build_seconds"),
                "wall_seconds": round(time.perf_counter() - started, 2),
            }
            print(f"built {name}: {results['models'][key]['weight_bytes']['total'] / 1e9:.2f} GB "
                  f"in {results['models'][key]['wall_seconds']} s", flush=True)
    return folders


# --- raw mlx-vlm -----------------------------------------------------------------------------


def token_rates(times: list[float]) -> dict:
    """A run's decode rate from the wall time of each of its tokens: between its first and its
    last token (prefill and time to first token fall out), and 1 / the median gap (what one
    stall cannot move; a burst of chunks read at once can, so it is not the headline)."""
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return {"tokens": len(times), "tps": (len(times) - 1) / span if span > 0 else float("nan"),
            "tps_median_gap": 1 / median(gaps) if gaps and median(gaps) > 0 else float("nan")}


def spread(ratios: list[float]) -> dict:
    """Median and quartiles of the pairs' ratios."""
    if len(ratios) < 2:
        return {"median": median(ratios), "p25": median(ratios), "p75": median(ratios)}
    q = statistics.quantiles(ratios, n=4)
    return {"median": median(ratios), "p25": q[0], "p75": q[2]}


def drift(rates: list[float]) -> float:
    """The machine's drift over a measurement: the last third's median rate / the first third's."""
    third = max(1, len(rates) // 3)
    return median(rates[-third:]) / median(rates[:third])


class Raw:
    """The model loaded in this process by mlx-vlm itself, driven by `mlx_vlm.stream_generate`."""

    def __init__(self, folder: Path):
        import mlx.core as mx

        mx.eval(mx.zeros(1))  # the device is up before the load is timed
        started = time.perf_counter()
        self.model, self.processor, self.tokenizer = self.library_load(str(folder))
        mx.eval(self.model.parameters())
        self.load_s = time.perf_counter() - started
        self.ban = {i: -1e9 for i in end_ids(folder)}

    @staticmethod
    def library_load(folder: str) -> tuple:
        """(model, processor, tokenizer) as the library loads them."""
        from mlx_vlm import load

        model, processor = load(folder)
        return model, processor, getattr(processor, "tokenizer", processor)

    def run(self, messages: list[dict], max_tokens: int) -> list[float]:
        """Wall times: the start, then each token as stream_generate yields it."""
        from mlx_vlm import stream_generate

        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        times = [time.perf_counter()]
        for _ in stream_generate(self.model, self.processor, text, max_tokens=max_tokens, temperature=0.0,
                                 logit_bias=self.ban):
            times.append(time.perf_counter())
        return times

    def decode(self, i: int, tokens: int) -> dict:
        times = self.run(short(i), tokens)
        return {"ttft": times[1] - times[0], **token_rates(times[1:])}

    def close(self) -> None:
        import mlx.core as mx

        del self.model, self.processor
        gc.collect()
        mx.clear_cache()


# --- through the server ----------------------------------------------------------------------


def chat(url: str, body: dict) -> dict:
    """One streamed chat completion: wall times of the request, of the first chunk that carries
    text or a finish reason, and of every content chunk; the usage."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=900)
    payload = json.dumps({**body, "stream": True, "stream_options": {"include_usage": True}})
    t0 = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", payload, {"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {response.read()[:500]!r}")
    first, times, usage = None, [], None
    for line in response:
        if not line.startswith(b"data: "):
            continue
        data = line[6:].strip()
        if data == b"[DONE]":
            break
        chunk = json.loads(data)
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            now = time.perf_counter()
            if choice.get("delta", {}).get("content"):
                times.append(now)
                first = first or now
            elif choice.get("finish_reason"):
                first = first or now
    end = time.perf_counter()
    conn.close()
    return {"t0": t0, "first": first, "times": times, "usage": usage, "end": end}


def health(url: str) -> dict:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request("GET", "/health")
    data = json.loads(conn.getresponse().read())
    conn.close()
    return data


class Served:
    """One model of the live server, spoken to over HTTP as a client would."""

    def __init__(self, url: str, model_id: str, folder: Path):
        from transformers import AutoTokenizer

        self.url = url
        self.base = {"model": model_id, "temperature": 0, "logit_bias": {str(i): -100 for i in end_ids(folder)}}
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))

    def load(self) -> dict:
        """A one-token request naming the model: the whole request's wall time (the swap in
        it) and the engine's own load time."""
        r = chat(self.url, {**self.base, "messages": short(999), "max_tokens": 1})
        status = health(self.url)
        return {"request_s": r["end"] - r["t0"], "engine_load_s": status.get("load_seconds"),
                "device": status.get("device"), "model_bytes": status.get("model_bytes")}

    def decode(self, i: int, tokens: int) -> dict:
        r = chat(self.url, {**self.base, "messages": short(i), "max_tokens": tokens})
        n = r["usage"]["completion_tokens"]
        rates = token_rates(r["times"])
        if len(r["times"]) < 0.9 * n:  # tokens whose text came later (held-back bytes): the whole request
            rates.update(tps=n / (r["end"] - r["t0"]), whole_request=True)
        return {"ttft": r["first"] - r["t0"], "completion_tokens": n, "chunks": len(r["times"]), **rates}


class RawText(Raw):
    """A text model loaded in this process by mlx-lm itself, driven by `mlx_lm.stream_generate`."""

    @staticmethod
    def library_load(folder: str) -> tuple:
        from mlx_lm import load

        model, tokenizer = load(folder)
        return model, tokenizer, tokenizer

    def run(self, messages: list[dict], max_tokens: int) -> list[float]:
        from mlx_lm import stream_generate
        from mlx_lm.sample_utils import make_logits_processors, make_sampler

        prompt = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        times = [time.perf_counter()]
        for _ in stream_generate(self.model, self.tokenizer, prompt, max_tokens=max_tokens,
                                 sampler=make_sampler(0.0), logits_processors=make_logits_processors(self.ban)):
            times.append(time.perf_counter())
        return times


def decode_pairs(raw: Raw, served: Served, tokens: int, pairs: int, offset: int = 0) -> dict:
    """`pairs` decode runs of each, alternating ABBA (so drift falls on both alike), after one
    warm-up pair; every prompt new (no cached prefix) and of the same length."""
    raw_runs, server_runs = [], []
    for i in range(pairs + 1):
        order = (raw, served) if i % 2 == 0 else (served, raw)
        runs = {id(side): side.decode(offset + 2 * i + k, tokens) for k, side in enumerate(order)}
        if i:
            raw_runs.append(runs[id(raw)])
            server_runs.append(runs[id(served)])
    ratios = [s["tps"] / r["tps"] for r, s in zip(raw_runs, server_runs)]
    raw_tps, server_tps = median([r["tps"] for r in raw_runs]), median([s["tps"] for s in server_runs])
    return {"raw_runs": raw_runs, "server_runs": server_runs, "raw_tps": raw_tps, "server_tps": server_tps,
            "ratio": server_tps / raw_tps, "pair_ratios": ratios, "pair_spread": spread(ratios),
            "raw_drift": drift([r["tps"] for r in raw_runs]),
            "server_drift": drift([s["tps"] for s in server_runs])}


def text_twin(folder: Path, out: Path) -> Path:
    """The vision model's language model as a text model folder for mlx-lm: the arrays the
    server's own mapping (backends/vision_text.py) puts under mlx-lm's class, that class's
    config, the same tokenizer: a text model of the same shape and weights."""
    import shutil

    import mlx.core as mx
    from mlx_lm.utils import save_config, save_model
    from mlx_vlm import load

    from inference.engine.backends.vision_text import MLX_LM_CLASS_OF, text_class_of, text_config_of
    from inference.engine.disk_cache import weights_fingerprint

    if (out / "config.json").exists():
        return out
    vision_model, _ = load(str(folder))
    text = text_class_of(vision_model, folder, weights_fingerprint(folder))
    if text is None:
        raise RuntimeError(f"{folder.name}: no mlx-lm class takes its language model")
    config = json.loads((folder / "config.json").read_text())
    twin = {**text_config_of(config), "model_type": MLX_LM_CLASS_OF[config["model_type"]]}
    for key in ("quantization", "eos_token_id"):
        if key in config:
            twin[key] = config[key]
    staging = out.with_name(out.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    save_model(staging, text.model)
    save_config(twin, staging / "config.json")
    for file in folder.iterdir():
        if file.name.startswith(("tokenizer", "special_tokens", "chat_template", "generation_config")):
            shutil.copy(file, staging / file.name)
    del vision_model, text
    gc.collect()
    mx.clear_cache()
    staging.rename(out)
    return out


def measure_text(folder: Path, family: str, dtype: str, tokens: int, reps: int) -> dict:
    """Server over raw mlx-lm on the text twin (goal >= 0.97): the same pairs, one server per
    batch size (MLX_SERVER_BATCH_SIZE 1: each request on generate_step; the GPU default
    CLIENTS: a lone request on mlx-lm's BatchGenerator too), up at once."""
    from testkit.live import LiveServer

    twin = text_twin(folder, folder.with_name(folder.name + "-text"))
    model_id = f"{family}-{dtype}-text"
    out: dict = {"folder": str(twin)}
    with tempfile.TemporaryDirectory() as tmp:
        servers = {}
        for size in (CLIENTS, 1):
            root = Path(tmp) / f"batch{size}"
            root.mkdir()
            servers[size] = LiveServer(root, {"models": [{"id": model_id, "source": {"path": str(twin)}}]},
                                       env={"MLX_SERVER_LOG_BODY_CHARS": "2000", "MLX_SERVER_BATCH_SIZE": str(size)})
        try:
            for server in servers.values():
                server.start()
            raw = RawText(twin)
            try:
                for size, server in servers.items():
                    served = Served(server.url, model_id, twin)
                    served.load()
                    pairs = decode_pairs(raw, served, tokens, reps)
                    if size == CLIENTS:
                        out.update(pairs)  # the default's figures are the headline
                    out[f"batch_size_{size}"] = {k: v for k, v in pairs.items() if not k.endswith("_runs")}
            finally:
                raw.close()
        finally:
            for server in servers.values():
                server.stop()
    return out


# --- one dtype, raw and server interleaved ---------------------------------------------------


def measure_family(raw: Raw, served: Served, tag: str, tokens: int, reps: int, prompt_tokens: int) -> dict:
    """Decode pairs alternate raw/server (order flipped each repetition) so that drift in the
    machine's speed falls on both; then the long prompt, cold in both and as a follow-up turn
    through the server's prefix cache."""
    pairs = decode_pairs(raw, served, tokens, reps)
    raw_cold, cold, cached, cached_tokens = [], [], [], []
    for i in range(4):  # the first warms the long-prompt kernels up
        messages = long_messages(raw.tokenizer, prompt_tokens, f"{tag}-raw-{i}")
        times = raw.run(messages, 1)
        messages = long_messages(served.tokenizer, prompt_tokens, f"{tag}-server-{i}")
        r = chat(served.url, {**served.base, "messages": messages, "max_tokens": 1})
        follow = messages + [{"role": "assistant", "content": "Noted."},
                             {"role": "user", "content": "Now list the ships."}]
        r2 = chat(served.url, {**served.base, "messages": follow, "max_tokens": 1})
        if i:
            raw_cold.append(times[1] - times[0])
            cold.append(r["first"] - r["t0"])
            cached.append(r2["first"] - r2["t0"])
            cached_tokens.append(r2["usage"]["prompt_tokens_details"]["cached_tokens"])
    from concurrent.futures import ThreadPoolExecutor

    def aggregate(clients: int, rep: int) -> float:
        """Tokens/s of `clients` streams at once (their tokens over the wall time of all)."""
        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            runs = list(pool.map(lambda k: chat(served.url, {**served.base, "messages": short(1000 + 50 * rep + k),
                                                             "max_tokens": tokens}), range(clients)))
        return sum(r["usage"]["completion_tokens"] for r in runs) / (time.perf_counter() - started)

    concurrency = [(aggregate(1, 2 * i), aggregate(CLIENTS, 2 * i + 1)) for i in range(3)]
    return {
        "concurrency": {"clients": CLIENTS, "pairs_tps": concurrency,
                        "ratio": median([many / one for one, many in concurrency])},
        "decode": pairs,
        "raw": {"load_s": raw.load_s, "decode_tps": pairs["raw_tps"],
                "ttft_cold_runs": raw_cold, "ttft_cold_s": median(raw_cold)},
        "server": {"decode_tps": pairs["server_tps"],
                   "long_prompt_tokens": r["usage"]["prompt_tokens"],
                   "ttft_cold_runs": cold, "ttft_cold_s": median(cold),
                   "ttft_cached_runs": cached, "ttft_cached_s": median(cached), "cached_tokens": cached_tokens},
    }


def measure_dtype(folders: dict[str, Path], dtype: str, tokens: int, reps: int, prompt_tokens: int) -> dict:
    from testkit.live import LiveServer

    ids = {family: f"{family}-{dtype}" for family in folders}
    models = {"models": [
        {"id": ids[family], "source": {"path": str(folder)}, "backend": "vision", "capabilities": ["chat", "vision"]}
        for family, folder in folders.items()
    ]}
    a, b = list(folders)
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer(Path(tmp), models, env={
            "MLX_SERVER_PROMPT_CACHE_BYTES": str(8 * 1024**3), "MLX_SERVER_LOG_BODY_CHARS": "2000",
            "MLX_SERVER_BATCH_SIZE": str(CLIENTS),
        }).start()
        try:
            served = {family: Served(server.url, ids[family], folders[family]) for family in folders}
            out["first_load"] = served[a].load()
            for family, swap in ((a, None), (b, f"swap_{a}_to_{b}")):
                if swap:
                    out[swap] = served[family].load()
                raw = Raw(folders[family])
                try:
                    out[family] = measure_family(raw, served[family], f"{dtype}-{family}", tokens, reps, prompt_tokens)
                finally:
                    raw.close()
                m = out[family]
                print(f"{family}/{dtype}: raw {m['raw']['decode_tps']:.1f} server {m['server']['decode_tps']:.1f} "
                      f"tok/s, pair ratios {spread(m['decode']['pair_ratios'])}, "
                      f"raw drift {m['decode']['raw_drift']:.3f}", flush=True)
            out[f"swap_{b}_to_{a}"] = served[a].load()
            out["health"] = health(server.url)
        except Exception as exc:
            traceback.print_exc()
            out["error"] = repr(exc)
        finally:
            server.stop()
            log = server.log_path.read_text() if server.log_path.exists() else ""
            out["startup_log"] = [line for line in log.splitlines() if "device" in line.lower()][:3]
            if "error" in out:
                out["log_tail"] = log.splitlines()[-30:]
    return out


def measure_swaps(folders: dict[str, Path], dtype: str, rounds: int = 3) -> dict:
    """Swaps between the two models through the server (each swap evicts the other: the one-
    model rule), `rounds` times each way after a first load of each (that first use of a class's
    kernels compiles them on CUDA, in either process), against raw mlx_vlm.load of the same
    folders in this process, interleaved; and what the load-time probes logged (the text and
    image logprob gaps of mlx-lm's class against mlx-vlm's on these weights)."""
    from testkit.live import LiveServer

    ids = {family: f"{family}-{dtype}" for family in folders}
    models = {"models": [{"id": ids[f], "source": {"path": str(p)}, "backend": "vision"} for f, p in folders.items()]}
    out: dict = {"server": {f: [] for f in folders}, "raw": {f: [] for f in folders}}
    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer(Path(tmp), models, env={"MLX_SERVER_LOG_BODY_CHARS": "2000"}).start()
        try:
            served = {f: Served(server.url, ids[f], folders[f]) for f in folders}
            for family in folders:  # first use of each: kernels compile
                served[family].load()
                Raw(folders[family]).close()
            for _ in range(rounds):
                for family in folders:
                    out["server"][family].append(served[family].load())
                    raw = Raw(folders[family])
                    out["raw"][family].append(raw.load_s)
                    raw.close()
        finally:
            server.stop()
            log = server.log_path.read_text() if server.log_path.exists() else ""
            out["probe_log"] = [line.split(": ", 1)[-1] for line in log.splitlines()
                                if "probe" in line or "disagrees" in line or "stay on mlx-vlm" in line]
    for family in folders:
        raw = median(out["raw"][family])
        out[family] = {
            "raw_load_s": raw,
            "swap_engine_load_s": median([x["engine_load_s"] for x in out["server"][family]]),
            "swap_request_s": median([x["request_s"] for x in out["server"][family]]),
        }
        out[family]["engine_load_over_raw"] = out[family]["swap_engine_load_s"] / raw
        out[family]["request_over_raw"] = out[family]["swap_request_s"] / raw
    return out


# --- the table -------------------------------------------------------------------------------


def summarise(results: dict) -> list[dict]:
    rows = []
    for dtype in DTYPES:
        measured = results.get("measured", {}).get(dtype, {})
        for family in FAMILIES:
            key = f"{family}/{dtype}"
            model = results.get("models", {}).get(key)
            if not (model and family in measured):
                continue
            raw, ours = measured[family]["raw"], measured[family]["server"]
            other = next(f for f in FAMILIES if f != family)
            swap = measured.get(f"swap_{other}_to_{family}", {})
            nbytes = model["weight_bytes"]["total"]
            floor = bandwidth(results.get("device", {})) / nbytes
            pairs = measured[family]["decode"]
            text = results.get("measured_text", {}).get(key, {})
            rows.append({
                "model": key, "weight_gb": round(nbytes / 1e9, 2),
                "raw_tps": round(raw["decode_tps"], 1), "server_tps": round(ours["decode_tps"], 1),
                "decode_ratio": round(pairs["ratio"], 3),
                "decode_pair_ratio_quartiles": [round(pairs["pair_spread"][q], 3) for q in ("p25", "median", "p75")],
                "decode_pairs": len(pairs["pair_ratios"]),
                "raw_drift": round(pairs["raw_drift"], 3),
                "text_raw_mlx_lm_tps": round(text["raw_tps"], 1) if "raw_tps" in text else None,
                "text_server_tps": round(text["server_tps"], 1) if "server_tps" in text else None,
                "text_ratio": round(text["ratio"], 3) if "ratio" in text else None,
                "text_pair_ratio_quartiles": [round(text["pair_spread"][q], 3) for q in ("p25", "median", "p75")]
                if "pair_spread" in text else None,
                "text_raw_drift": round(text["raw_drift"], 3) if "raw_drift" in text else None,
                "text_ratio_batch_size_1": round(text["batch_size_1"]["ratio"], 3) if "batch_size_1" in text else None,
                "text_pair_ratio_quartiles_batch_size_1": [
                    round(text["batch_size_1"]["pair_spread"][q], 3) for q in ("p25", "median", "p75")]
                if "batch_size_1" in text else None,
                "prompt_tokens": ours["long_prompt_tokens"],
                "raw_ttft_cold_s": round(raw["ttft_cold_s"], 3),
                "server_ttft_cold_s": round(ours["ttft_cold_s"], 3),
                "server_ttft_cached_s": round(ours["ttft_cached_s"], 3),
                "cached_tokens": ours["cached_tokens"],
                "raw_load_s": round(raw["load_s"], 2),
                "swap_request_s": round(swap["request_s"], 2) if swap else None,
                "swap_engine_load_s": swap.get("engine_load_s"),
                "swap_over_raw_load": round(swap["request_s"] / raw["load_s"], 2) if swap else None,
                "swap_engine_load_over_raw_load": round(swap["engine_load_s"] / raw["load_s"], 2)
                if swap and swap.get("engine_load_s") else None,
                "bandwidth_floor_tps": round(floor, 1),
                "fraction_of_floor": round(ours["decode_tps"] / floor, 3),
                "raw_fraction_of_floor": round(raw["decode_tps"] / floor, 3),
                "concurrency_ratio": round(measured[family]["concurrency"]["ratio"], 2)
                if "concurrency" in measured[family] else None,
            })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=Path("var/gpu-models"))
    parser.add_argument("--tokenizer-from", type=Path, default=None)
    parser.add_argument("--size", default="4b")
    parser.add_argument("--dtypes", default="4bit,bf16")
    parser.add_argument("--stages", default="vision,text",
                        help="vision: the vision models through the server and raw mlx-vlm (both families); "
                             "text: their language models as text twins, server and raw mlx-lm; "
                             "swap: swaps between the two (kernels warm) against raw loads")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--reps", type=int, default=12, help="decode pairs (raw, server) per model")
    parser.add_argument("--prompt-tokens", type=int, default=8192)
    parser.add_argument("--out", type=Path, default=Path("bench/results/gpu.json"))
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlxsite.settings")
    results = load_results(args.out)
    results.setdefault("device", device_info())
    results["settings"] = {"size": args.size, "tokens": args.tokens, "reps": args.reps,
                           "prompt_tokens": args.prompt_tokens, "hbm_bytes_per_s": bandwidth(results["device"])}
    save_results(args.out, results)
    print(results["device"], flush=True)
    for dtype in args.dtypes.split(","):
        folders = build(args.models_dir, args.tokenizer_from, args.size, dtype, results)
        save_results(args.out, results)
        stages = args.stages.split(",")
        if "swap" in stages and "error" in results.setdefault("swaps", {}).get(dtype, {"error": "not run"}):
            try:
                results["swaps"][dtype] = measure_swaps(folders, dtype)
            except Exception as exc:
                traceback.print_exc()
                results["swaps"][dtype] = {"error": repr(exc)}
            print(f"{dtype} swaps: {json.dumps({f: results['swaps'][dtype].get(f) for f in folders})}", flush=True)
            print("\n".join(results["swaps"][dtype].get("probe_log", [])), flush=True)
            save_results(args.out, results)
        if "vision" in stages and "error" in results.setdefault("measured", {}).get(dtype, {"error": "not run"}):
            started = time.perf_counter()
            results["measured"][dtype] = measure_dtype(folders, dtype, args.tokens, args.reps, args.prompt_tokens)
            print(f"{dtype}: measured in {time.perf_counter() - started:.0f}s", flush=True)
        results["table"] = summarise(results)
        save_results(args.out, results)
        for family, folder in folders.items():
            key = f"{family}/{dtype}"
            if "text" in stages and "ratio" not in results.setdefault("measured_text", {}).get(key, {}):
                try:
                    results["measured_text"][key] = measure_text(folder, family, dtype, args.tokens, args.reps)
                except Exception as exc:
                    traceback.print_exc()
                    results["measured_text"][key] = {"error": repr(exc)}
                print(f"{key} as text: {json.dumps({k: v for k, v in results['measured_text'][key].items() if not k.endswith('_runs')})}", flush=True)
                results["table"] = summarise(results)
                save_results(args.out, results)
    for row in results["table"]:
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

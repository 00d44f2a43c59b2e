"""Our server against its peers, side by side, in one run: every figure is a ratio of two
things measured in this same run (medians of --reps repetitions after a warm-up), so the
machine's speed and load cancel out as far as they can. Prints a table and writes
bench/results/peers.json, peers.md (the table) and peers.png (the chart).

    .venv/bin/python -m bench.peers [--tokens 128] [--reps 5] [--only overhead,peers,swap,prefix]

1. server overhead: our server over raw `mlx_lm.stream_generate` (bench.overhead)
2. mlx_lm.server on the same MLX folder, 3. llama-cpp-python's server on the same GGUF
   (when llama-cpp-python is installed), measured alternately with ours, request by request
4. swap: a request that swaps model A for B over a raw mlx-lm load of B
5. prefix cache (bench.prefix_cache) and 4 concurrent clients over one

Greedy with end-of-sequence banned, so every server makes the same number of tokens.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from bench.common import end_ids, machine_info, median, stream_once
from bench.overhead import interleaved_runs
from bench.peer_report import Row, chart, table
from bench.peer_servers import PeerServer, llama_cpp_missing, llama_cpp_server, mlx_lm_server, version_of
from testkit.cache import SMOLLM2_SOURCE

if TYPE_CHECKING:
    from openai import OpenAI

    from testkit.live import LiveServer

CACHE = Path("var/bench-cache")  # our own imports: the test suite prunes var/test-cache while it runs
SECTIONS = ("overhead", "peers", "swap", "prefix")


def smollm2(dtype: str) -> Path:
    """SmolLM2-135M-Instruct imported at `dtype` from the GGUF the test suite pins, into
    var/bench-cache (a no-op when it is there already)."""
    from registry.gguf import import_gguf

    return import_gguf(str(smollm2_gguf()), CACHE / "models" / f"smollm2-135m-instruct-{dtype}", dtype=dtype,
                       progress=False)


def smollm2_gguf() -> Path:
    from registry.gguf.sources import resolve_source

    return resolve_source(SMOLLM2_SOURCE, CACHE / "downloads")  # the GGUF the test suite pins


def ban_of(model_dir: Path) -> dict[str, int]:
    """logit_bias that bans the end tokens (what RawMlxLm bans, without loading weights)."""
    from mlx_lm.utils import load_tokenizer

    return {str(i): -100 for i in end_ids(load_tokenizer(model_dir))}


def client_of(url: str) -> "OpenAI":
    from openai import OpenAI

    return OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=600)


def our_server(tmp: Path, models: dict[str, Path], env: dict[str, str] | None = None) -> "LiveServer":
    """Our server (testkit.live.LiveServer) on a models.yaml of the given folders, started."""
    from testkit.live import LiveServer

    spec = {"models": [{"id": name, "source": {"path": str(path)}} for name, path in models.items()]}
    return LiveServer(tmp, spec, env).start()


# --- 1. server overhead -------------------------------------------------------------------


def overhead(model_dir: Path, tokens: int, reps: int) -> tuple[list[Row], dict, dict]:
    """bench.overhead's two measurements; returns the ban (end tokens) for the other sections."""
    runs = interleaved_runs(model_dir, tokens, reps)
    raw, ours, ban = runs["raw"], runs["server"], runs["ban"]
    rows = [
        Row("decode tok/s: our server / raw mlx-lm", median(ours["runs"], "tps"), median(raw["runs"], "tps"),
            "tok/s", ">= 0.97"),
        Row("TTFT: our server / raw mlx-lm", median(ours["runs"], "ttft") * 1000,
            median(raw["runs"], "ttft") * 1000, "ms"),
    ]
    return rows, {"raw": raw, "server": ours}, ban


# --- 2, 3 and 5b. peers side by side, and concurrency ----------------------------------------


def concurrent(client: "OpenAI", model: str, tokens: int, ban: dict, clients: int) -> float:
    """Aggregate end-to-end tokens/s of `clients` identical requests sent at once."""
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        runs = list(pool.map(lambda _: stream_once(client, model, tokens, ban), range(clients)))
    return sum(r["tokens"] for r in runs) / (time.perf_counter() - started)


def side_by_side(servers: dict[str, tuple[str, str]], tokens: int, reps: int, conc_reps: int, ban: dict,
                 clients: int) -> dict[str, dict]:
    """Each server (name: (url, model)) warmed, then measured in turn, one request each per
    round, so a change in the machine's load hits all of them alike. Then one client's
    end-to-end tokens/s against `clients` at once, also round by round."""
    clients_of = {name: client_of(url) for name, (url, _) in servers.items()}
    out: dict[str, dict] = {name: {"runs": [], "single_tps": [], "concurrent_tps": []} for name in servers}
    for name, (_, model) in servers.items():
        stream_once(clients_of[name], model, tokens, ban)  # warm-up
    for _ in range(reps):
        for name, (_, model) in servers.items():
            out[name]["runs"].append(stream_once(clients_of[name], model, tokens, ban))
    for _ in range(conc_reps):
        for name, (_, model) in servers.items():
            one = stream_once(clients_of[name], model, tokens, ban)
            out[name]["single_tps"].append(one["tokens"] / one["wall"])
            out[name]["concurrent_tps"].append(concurrent(clients_of[name], model, tokens, ban, clients))
    return out


def peers(model_dir: Path, tokens: int, reps: int, conc_reps: int, ban: dict, clients: int
          ) -> tuple[list[Row], dict]:
    """Ours, ours with continuous batching on, mlx_lm.server and (if installed) llama.cpp's
    server, all up at once."""
    missing = llama_cpp_missing()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started: list = []
        try:
            ours = our_server(tmp, {"m": model_dir})
            started.append(ours)
            servers = {"ours": (ours.url, "m")}
            (tmp / "batch").mkdir()
            batching = our_server(tmp / "batch", {"m": model_dir}, {"MLX_SERVER_BATCH_SIZE": str(clients)})
            started.append(batching)
            servers[f"ours, MLX_SERVER_BATCH_SIZE={clients}"] = (batching.url, "m")
            peer_list: list[PeerServer] = [mlx_lm_server(model_dir, tmp)]
            if missing is None:
                peer_list.append(llama_cpp_server(smollm2_gguf(), tmp))
            for peer in peer_list:
                started.append(peer.start())
                servers[peer.name] = (peer.url, peer.model)
            data = side_by_side(servers, tokens, reps, conc_reps, ban, clients)
        finally:
            for server in started:
                server.stop()
    rows = []
    for peer in ("mlx_lm.server", "llama.cpp"):
        if peer not in data:
            rows += [Row(f"decode tok/s: ours / {peer}", unit="tok/s", note=missing or ""),
                     Row(f"TTFT: ours / {peer}", unit="ms", note=missing or "")]
            continue
        goals = (">= 1.0", "<= 1.0") if peer == "mlx_lm.server" else ("", "")
        note = "" if peer == "mlx_lm.server" else "llama.cpp runs the Q4_1 GGUF, ours its bf16 import"
        rows += [Row(f"decode tok/s: ours / {peer}", median(data["ours"]["runs"], "tps"),
                     median(data[peer]["runs"], "tps"), "tok/s", goals[0], note),
                 Row(f"TTFT: ours / {peer}", median(data["ours"]["runs"], "ttft") * 1000,
                     median(data[peer]["runs"], "ttft") * 1000, "ms", goals[1], note)]
    for name in data:
        rows.append(Row(f"concurrency, {name}: {clients} clients / 1 (agg. tok/s)",
                        statistics.median(data[name]["concurrent_tps"]), statistics.median(data[name]["single_tps"]),
                        "tok/s", note="end-to-end tokens/s, TTFT included"))
    return rows, data


# --- 4. swap --------------------------------------------------------------------------------


def raw_loads(model_dir: Path, reps: int) -> list[float]:
    """Seconds of `mlx_lm.load` of the folder (weights evaluated), after one warm-up load so
    the page cache is as warm as the server's."""
    import mlx.core as mx
    from mlx_lm import load

    times = []
    for _ in range(reps + 1):
        started = time.perf_counter()
        model, tokenizer = load(str(model_dir))
        times.append(time.perf_counter() - started)
        del model, tokenizer
        gc.collect()
        mx.clear_cache()
    return times[1:]


def swap(a_dir: Path, b_dir: Path, reps: int) -> tuple[list[Row], dict]:
    """A one-token request for B while A is resident, against a raw load of B. The request
    also prefills its prompt (seconds on this CPU, milliseconds on a GPU), so the same request
    on B already resident is timed right after it (prompt cache off: both prefill alike) and
    the difference is what the swap itself cost."""
    raw = raw_loads(b_dir, reps)
    hello = [{"role": "user", "content": "Hi"}]
    swaps, resident, reported = [], [], []

    def timed(client: "OpenAI", model: str) -> float:
        started = time.perf_counter()
        client.chat.completions.create(model=model, messages=hello, max_tokens=1, temperature=0)
        return time.perf_counter() - started

    with tempfile.TemporaryDirectory() as tmp:
        server = our_server(Path(tmp), {"a": a_dir, "b": b_dir}, {"MLX_SERVER_PROMPT_CACHE": "0"})
        try:
            client = client_of(server.url)
            for _ in range(reps + 1):  # the first round warms up
                timed(client, "a")
                swaps.append(timed(client, "b"))
                reported.append(server.health()["load_seconds"])
                resident.append(timed(client, "b"))
        finally:
            server.stop()
    swaps, resident, reported = swaps[1:], resident[1:], reported[1:]
    added = [s - r for s, r in zip(swaps, resident)]
    load = statistics.median(raw)
    rows = [Row("swap A->B: what the swap adds to a request / raw mlx-lm load of B", statistics.median(added),
                load, "s", "<= 1.2", "swapping request minus the same request with B resident"),
            Row("swap A->B: server's load_seconds / raw load of B", statistics.median(reported), load, "s",
                note="the load alone, without unload and the request"),
            Row("swap A->B: whole request / raw load of B", statistics.median(swaps), load, "s",
                note=f"includes the request's own prefill and token ({statistics.median(resident):.2f} s "
                     f"with B resident): A {a_dir.name}, B {b_dir.name}")]
    return rows, {"raw_load_s": raw, "swap_request_s": swaps, "resident_request_s": resident,
                  "server_load_s": reported}


# --- 5a. prefix cache -----------------------------------------------------------------------


def prefix(model_dir: Path, reps: int) -> tuple[list[Row], dict]:
    """bench.prefix_cache's two servers (cache off, then on)."""
    from bench.prefix_cache import run_server

    cold = run_server(model_dir, False, reps)
    warm = run_server(model_dir, True, reps)
    rows = []
    for case, label, goal in (("chat", "chat turn", ">= 10"), ("shared_system", "shared system prompt", "")):
        c = statistics.median(r[0] for r in cold[case]) * 1000
        w = statistics.median(r[0] for r in warm[case]) * 1000
        rows.append(Row(f"prefix cache, {label}: TTFT cold / cached", c, w, "ms", goal,
                        f"{warm[case][0][1]} prompt tokens"))
    return rows, {"cold": cold, "cached": warm}


# --- the run --------------------------------------------------------------------------------


def environment() -> dict:
    """Machine, versions, time and load: the figures only mean something next to these."""
    info = machine_info()
    info["versions"].update({p: version_of(p) for p in ("llama-cpp-python", "django", "daphne", "openai")})
    load = os.getloadavg()
    info.update({"date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                 "load_avg_start": [round(x, 2) for x in load]})
    return info


def save(out: Path, info: dict, args: argparse.Namespace, rows: list[Row], data: dict, pending: list[str]) -> str:
    """Write json, md and png for what is measured so far (a run cut short keeps its
    finished sections) and return the table."""
    info["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    order = {name: i for i, name in enumerate(SECTIONS)}
    shown = sorted(rows, key=lambda r: order.get(r.section, 0))
    shown += [Row(f"section {name}", note="not reached in this run", section=name) for name in pending]
    loads = [info["load_avg_start"][0], info["load_avg_end"][0]]
    loads += [x for d in data.values() for x in (d.get("measured", {}).get("load_avg_end", [0])[0],)]
    busy = max(loads) > 2  # the load the figures were taken under, on this 2-core machine
    title = (f"mlx-server vs peers, SmolLM2-135M bf16, {args.tokens} tokens, median of {args.reps} "
             f"(concurrency {args.conc_reps}, prefix cache {args.prefix_reps})\n"
             f"{info['machine']}, mlx {info['versions']['mlx']}, mlx-lm {info['versions']['mlx_lm']}\n"
             f"{info['date_utc']}, load avg {info['load_avg_start'][0]} -> {info['load_avg_end'][0]}"
             + (" (machine busy: figures noisy)" if busy else ""))
    result = {**info, "title": title, "args": {k: str(v) for k, v in vars(args).items()},
              "rows": [r.as_dict() for r in shown], "data": data}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    chart(shown, title, out.with_suffix(".png"))
    text = table(shown)
    when = "\n".join(f"- {name}: measured {d['measured']['utc']}, load average {d['measured']['load_avg_start'][0]}"
                     f" -> {d['measured']['load_avg_end'][0]}" for name, d in data.items() if "measured" in d)
    out.with_suffix(".md").write_text(f"{title}\n\nversions: {info['versions']}\n\n{when}\n\n{text}\n")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--conc-reps", type=int, help="repetitions of the concurrency rounds (default --reps)")
    parser.add_argument("--prefix-reps", type=int, help="repetitions of the prefix-cache turns (default --reps)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}")
    parser.add_argument("--out", type=Path, default=Path("bench/results/peers.json"))
    parser.add_argument("--keep", action="store_true",
                        help="keep the sections not in --only from the existing --out (each says when it ran)")
    args = parser.parse_args()
    args.conc_reps = args.conc_reps or args.reps
    args.prefix_reps = args.prefix_reps or args.reps
    only = [name for name in SECTIONS if name in args.only.split(",")]
    info = environment()
    print(f"{info['machine']}, {info['device']}, {info['date_utc']}, load average {info['load_avg_start']}")
    print(f"versions: {info['versions']}", flush=True)
    bf16 = smollm2("bfloat16")
    rows: list[Row] = []
    data: dict = {}
    ban: dict = {}
    if args.keep and args.out.exists():
        earlier = json.loads(args.out.read_text())
        kept = [name for name in earlier["data"] if name in SECTIONS and name not in only]
        data.update({name: earlier["data"][name] for name in kept})
        rows += [Row.from_dict(r) for r in earlier["rows"] if r.get("section") in kept]

    def run_overhead() -> tuple[list[Row], dict]:
        found, measured, end = overhead(bf16, args.tokens, args.reps)
        ban.update(end)
        return found, measured

    if "overhead" not in only:  # the end tokens, without the raw runs
        ban.update(ban_of(bf16))
    steps = {
        "overhead": run_overhead,
        "peers": lambda: peers(bf16, args.tokens, args.reps, args.conc_reps, ban, args.clients),
        "swap": lambda: swap(smollm2("float32"), bf16, args.reps),
        "prefix": lambda: prefix(bf16, args.prefix_reps),
    }
    text = ""
    for i, name in enumerate(only):
        print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
        when = {"utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "load_avg_start": [round(x, 2) for x in os.getloadavg()]}
        found, data[name] = steps[name]()
        data[name]["measured"] = {**when, "load_avg_end": [round(x, 2) for x in os.getloadavg()]}
        for row in found:
            row.section = name
        rows += found
        text = save(args.out, info, args, rows, data, only[i + 1:])
    print(f"[{time.strftime('%H:%M:%S')}] done, load average {info['load_avg_end']}")
    print(text)
    print(f"wrote {args.out}, {args.out.with_suffix('.md')} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()

"""Where our server's decode time goes: py-spy samples the live server process (every
thread, non-blocking) while it streams greedy tokens, and the samples are summed per
thread and per part of the path (MLX compute, detokenizer, SSE/JSON, Django/Daphne
plumbing, logging, thread hand-offs), so the overheads that are ours stand apart from
MLX's own work.

    .venv/bin/python -m bench.peers_profile [--tokens 256] [--requests 4] [--rate 200]

Then the same for short requests (time to first token) and for one request that swaps
models. Writes bench/results/peers.profile.txt (the summary) and peers.profile.{decode,first,swap}.raw
(py-spy's collapsed stacks).
"""
from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from bench.common import stream_once
from bench.peers import ban_of, client_of, our_server, smollm2

# Part of the path -> substrings of a frame ("function (file:line)"); first match wins,
# looked for from the leaf up, so a frame is charged to the innermost part it is in.
PARTS = {
    "logging": ("logging/__init__.py", "/logging/"),
    "JSON per chunk (sse/json.dumps)": ("json/encoder.py", "json/__init__.py", "sse (", "_chunk ("),
    "detokenizer": ("tokenizer_utils.py",),
    "sampling/logits processors": ("sample_utils.py",),
    "MLX compute (generate_step, eval)": ("generate.py", "mlx_lm/models/", "mlx/nn/"),
    "engine per-token Python (decode, sequence, batch, engine, text.py, stops)": (
        "engine/decode.py", "engine/sequence.py", "engine/batch.py", "engine/engine.py", "backends/text.py",
        "engine/stops.py"),
    "thread hand-off (call_soon_threadsafe, queue)": ("call_soon_threadsafe", "_write_to_self", "asyncio/queues.py"),
    "chat API per chunk (chat.py, tool parser)": ("api/chat.py", "inference/tools/"),
    "Django/ASGI/Daphne/Twisted plumbing": ("django/", "daphne/", "twisted/", "asgiref/", "autobahn/"),
    "asyncio event loop": ("asyncio/",),
}


def part_of(stack: list[str]) -> str:
    for frame in reversed(stack):
        for part, needles in PARTS.items():
            if any(n in frame for n in needles):
                return part
    return "other"


# Frames every stack passes through: left out of the inclusive listing.
SKIP = ("threading.py", "concurrent/futures", "manage.py", "django/core/management", "runpy",
        "base_events.py", "asyncio/events.py", "daphne/server.py", "daphne/cli.py", "twisted/internet",
        "daphne/management", "channels/management", "asgiref/sync.py")


def frame_name(frame: str) -> str:
    """'func (file.py:12)' -> 'func (file.py)': inclusive time is per function, not per line."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def summarize(raw: str, parts: bool = True, top: int = 25) -> str:
    """Samples per thread (and per part of the path, for decode), the functions with the
    most inclusive time, and the hottest leaf lines."""
    threads: collections.Counter[str] = collections.Counter()
    by_part: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    inclusive: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack_text, _, count = line.rpartition(" ")
        if not stack_text or not count.isdigit():
            continue
        n = int(count)
        head, *frames = stack_text.split(";")
        thread = head.split(": ", 1)[-1]  # "thread (1843): mlx-engine"
        total += n
        threads[thread] += n
        by_part[thread][part_of(frames)] += n
        for name in {frame_name(f) for f in frames if not any(k in f for k in SKIP)}:
            inclusive[name] += n
        if frames:
            leaves[frames[-1]] += n
    out = [f"{total} samples (non-idle), all threads"]
    for thread, n in threads.most_common(6):
        out.append(f"  {thread}: {n} samples ({100 * n / total:.1f}%)")
        if parts:
            out += [f"      {100 * m / n:5.1f}%  {part}" for part, m in by_part[thread].most_common()]
    out.append("functions by inclusive time (share of all samples):")
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    out.append("hottest leaf lines:")
    out += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in leaves.most_common(top // 2)]
    return "\n".join(out)


def recorded(spy: str, pid: int, rate: int, raw_path: Path, work: Callable[[], object]) -> object:
    """Run `work` while py-spy samples the process; the collapsed stacks go to raw_path."""
    recorder = subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--rate", str(rate), "--threads", "--nonblocking",
         "--format", "raw", "--output", str(raw_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    time.sleep(2)  # py-spy attaches
    try:
        return work()
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--requests", type=int, default=4)
    parser.add_argument("--firsts", type=int, default=20, help="4-token requests, for time to first token")
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("bench/results/peers.profile.txt"))
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    bf16 = smollm2("bfloat16")
    ban = ban_of(bf16)
    decode_raw, swap_raw = args.out.with_suffix(".decode.raw"), args.out.with_suffix(".swap.raw")
    first_raw = args.out.with_suffix(".first.raw")
    hello = [{"role": "user", "content": "Hi"}]
    with tempfile.TemporaryDirectory() as tmp:
        server = our_server(Path(tmp), {"m": bf16, "a": smollm2("float32")})
        try:
            client = client_of(server.url)
            stream_once(client, "m", 8, ban)  # load and warm
            runs = recorded(spy, server.process.pid, args.rate, decode_raw,
                            lambda: [stream_once(client, "m", args.tokens, ban) for _ in range(args.requests)])
            firsts = recorded(spy, server.process.pid, args.rate, first_raw,
                              lambda: [stream_once(client, "m", 4, ban) for _ in range(args.firsts)])
            client.chat.completions.create(model="a", messages=hello, max_tokens=1)
            started = time.perf_counter()
            recorded(spy, server.process.pid, args.rate, swap_raw,
                     lambda: client.chat.completions.create(model="m", messages=hello, max_tokens=1))
            swap_s = time.perf_counter() - started - 2  # less py-spy's attach wait
            load_s = server.health()["load_seconds"]
        finally:
            server.stop()
    tps = sorted(r["tps"] for r in runs)[len(runs) // 2]
    summary = (f"py-spy {args.rate} Hz on our server (SmolLM2-135M bf16), load average {os.getloadavg()[0]:.2f}\n\n"
               f"== decode: streaming {args.requests} x {args.tokens} tokens (median {tps:.1f} tok/s)\n"
               + summarize(decode_raw.read_text())
               + f"\n\n== first token: {args.firsts} streamed 4-token requests, prompt cached (median TTFT "
               f"{sorted(r['ttft'] for r in firsts)[len(firsts) // 2] * 1000:.0f} ms)\n"
               + summarize(first_raw.read_text(), parts=False)
               + f"\n\n== swap: a 1-token request for m while a (f32) is resident: {swap_s:.2f} s, "
               f"of which load_seconds {load_s:.2f}\n" + summarize(swap_raw.read_text(), parts=False))
    args.out.write_text(summary + "\n")
    print(summary)


if __name__ == "__main__":
    main()

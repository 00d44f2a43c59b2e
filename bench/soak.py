"""The long soak: mixed traffic from several clients for a bounded time against one live server
(testkit/soak.py says what), the server's RSS and MLX memory sampled throughout. Writes
bench/results/soak.json (every count and sample), soak.md (the figures) and soak.png (memory
over time). The CI variant is tests/test_e2e_soak.py (~3 minutes).

    .venv/bin/python -m bench.soak [--minutes 20] [--clients 4]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bench.common import machine_info
from testkit.cache import MINILM_SOURCE, SMOLLM2_SOURCE, TEST_CACHE, cached_gguf, cached_wheel_model, imported
from testkit.live import LiveServer
from testkit.soak import Soak, models

RESULTS = Path(__file__).resolve().parent / "results"


def chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = report["samples"]
    t = [s["t"] / 60 for s in samples]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot(t, [s["rss"] / 2**20 for s in samples], label="server RSS")
    ax.plot(t, [(s["active"] or 0) / 2**20 for s in samples], label="MLX active")
    ax.plot(t, [(s["cache"] or 0) / 2**20 for s in samples], label="MLX cache", alpha=0.6)
    quarter = t[-1] / 4
    for q in (1, 2, 3):
        ax.axvline(q * quarter, color="grey", lw=0.5, ls=":")
    ax.set_xlabel("minutes")
    ax.set_ylabel("MiB")
    ax.set_title(f"soak: {report['requests']} requests, {report['clients']} clients, "
                 f"{report['server_5xx']} 5xx; RSS Q4/Q2 {report['rss']['ratio']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def markdown(report: dict) -> str:
    lines = [f"# soak ({report['seconds'] / 60:.1f} min, {report['clients']} clients, {report['machine']['machine']})",
             "", "| figure | value | goal | met |", "|---|---:|---|---|"]
    rows = [
        ("requests sent", report["requests"], "-", "-"),
        ("server 5xx", report["server_5xx"], "0", report["server_5xx"] == 0),
        ("server alive at the end (no worker death)", report["server_alive"], "yes", report["server_alive"]),
        ("log rows / requests sent", f"{report['log_rows']} / {report['requests']}", "equal",
         report["log_rows"] == report["requests"]),
        ("client-side errors (timeouts, resets)", report["client_error_count"], "0", report["client_error_count"] == 0),
        ("RSS: last quarter median / second quarter", report["rss"]["ratio"], "within 5%", report["rss"]["flat"]),
        ("MLX active: last quarter / second quarter", report["mlx_active"]["ratio"], "within 5%",
         report["mlx_active"]["flat"]),
        ("MLX peak (MiB)", round(report["mlx_peak_bytes"] / 2**20, 1), "-", "-"),
    ]
    lines += [f"| {a} | {b} | {c} | {'yes' if d is True else 'no' if d is False else d} |" for a, b, c, d in rows]
    lines += ["", "| kind | statuses |", "|---|---|"]
    lines += [f"| {kind} | {', '.join(f'{s}: {n}' for s, n in statuses.items())} |"
              for kind, statuses in report["by_kind"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--name", default="soak", help="results file stem")
    args = parser.parse_args()
    from registry.fixtures import build_fixture

    gguf = cached_gguf(SMOLLM2_SOURCE)
    folders = models(imported(gguf, "float32"), imported(gguf), build_fixture(
        "tiny-qwen3-vl", TEST_CACHE / "models" / "tiny-qwen3-vl", cache_dir=TEST_CACHE / "downloads"),
        cached_wheel_model(MINILM_SOURCE))
    with tempfile.TemporaryDirectory() as root, LiveServer(Path(root), folders, {"MLX_SERVER_MAX_QUEUE": "64"}).start() as server:
        report = Soak(server, args.minutes * 60, clients=args.clients).run(has_embeddings=True)
    report["machine"] = machine_info()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=1))
    (RESULTS / f"{args.name}.md").write_text(markdown(report))
    chart(report, RESULTS / f"{args.name}.png")
    print(markdown(report))


if __name__ == "__main__":
    main()

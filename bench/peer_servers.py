"""Peer servers for bench.peers: mlx-lm's own server and llama-cpp-python's, each started
in its own process on a free port, so every server is measured the same way, over HTTP
through the openai SDK, started and stopped by the benchmark itself."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from pathlib import Path

from testkit.live import ServerProcess


class PeerServer(ServerProcess):
    """An OpenAI-compatible server command in its own process; `model` is the name its
    requests must send (mlx_lm.server loads any other name from the hub)."""

    ready_path = "/v1/models"

    def __init__(self, name: str, args: list[str], model: str, log_path: Path):
        super().__init__(log_path)
        self.name = name
        self.args = [a.replace("{port}", str(self.port)) for a in args]
        self.model = model

    def start(self, timeout: float = 120) -> "PeerServer":
        self.launch(self.args, {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}, timeout)
        return self


def mlx_lm_server(model_dir: Path, log_dir: Path) -> PeerServer:
    """`python -m mlx_lm.server` on the same MLX folder; greedy and max_tokens come per request."""
    return PeerServer("mlx_lm.server", ["-m", "mlx_lm.server", "--model", str(model_dir),
                                        "--port", "{port}", "--log-level", "WARNING"],
                      "default_model", log_dir / "mlx_lm_server.log")


def llama_cpp_missing() -> str | None:
    """Why llama-cpp-python's server cannot run here, or None when it can."""
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python not installed"
    for module in ("uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings"):
        if importlib.util.find_spec(module) is None:
            return f"llama-cpp-python's server extra not installed (no {module})"
    return None


def llama_cpp_server(gguf: Path, log_dir: Path, context: int = 2048) -> PeerServer:
    """llama-cpp-python's server on the GGUF the MLX folder was imported from, with every core
    (its default is half of them), and without its default of cutting a running request off
    when the next one arrives (concurrent clients then queue, as they do on ours)."""
    return PeerServer("llama.cpp", ["-m", "llama_cpp.server", "--model", str(gguf), "--port", "{port}",
                                    "--n_ctx", str(context), "--n_threads", str(os.cpu_count() or 1),
                                    "--model_alias", "m", "--interrupt_requests", "False"],
                      "m", log_dir / "llama_cpp_server.log")


def version_of(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None

"""Shared fixtures: real imported models (tests.fixtures_models) and a live server process."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

pytest_plugins = ["tests.fixtures_models"]

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """`manage.py runserver` (Daphne) in its own process, on its own database and models.yaml."""

    def __init__(self, root: Path, models: dict, env: dict[str, str] | None = None):
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (root / "models.yaml").write_text(yaml.safe_dump(models, sort_keys=False))
        self.env = {
            **os.environ,
            "MLX_SERVER_MODELS": str(root / "models.yaml"),
            "MLX_SERVER_DATA_DIR": str(root / "data"),
            "MLX_SERVER_DB": str(root / "db.sqlite3"),
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.log_path = root / "server.log"
        self.process: subprocess.Popen | None = None

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=self.env,
                              capture_output=True, text=True, check=True)

    def start(self) -> "LiveServer":
        self.manage("migrate", "--noinput", "-v", "0")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload"],
            cwd=REPO, env=self.env, stdout=self.log_path.open("w"), stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log_path.read_text()}")
            try:
                if requests.get(f"{self.url}/health", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                time.sleep(0.2)
        raise RuntimeError(f"server did not start:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def health(self) -> dict:
        return requests.get(f"{self.url}/health", timeout=10).json()

    def log_rows(self) -> list[dict]:
        import sqlite3

        with sqlite3.connect(self.root / "db.sqlite3") as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM inference_requestlog ORDER BY id")]


@pytest.fixture(scope="session")
def server(tmp_path_factory, smollm2_bf16_dir, smollm2_f32_dir):
    """The server on the real SmolLM2 import, two dtypes registered to swap between."""
    root = tmp_path_factory.mktemp("live")
    models = {
        "default": "smollm2",
        "models": [
            {"id": "smollm2-135m-instruct", "aliases": ["smollm2"], "source": {"path": str(smollm2_bf16_dir)},
             "context_length": 2048},
            {"id": "smollm2-135m-instruct-f32", "aliases": ["smollm2-f32"],
             "source": {"path": str(smollm2_f32_dir)}, "context_length": 2048},
            {"id": "absent-model", "source": {"path": str(root / "not-there")}},
        ],
    }
    server = LiveServer(root, models).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def openai_client(server):
    from openai import OpenAI

    return OpenAI(base_url=f"{server.url}/v1", api_key="not-needed", max_retries=0, timeout=120)

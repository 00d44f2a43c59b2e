"""A live `manage.py runserver` process for end-to-end tests and benchmarks."""
from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml

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
        with sqlite3.connect(self.root / "db.sqlite3") as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM inference_requestlog ORDER BY id")]

"""Servers in their own process for end-to-end tests and benchmarks: our `manage.py runserver`
(LiveServer) and, through the same start/wait/stop loop, any other server command (ServerProcess).
Both are context managers that stop the process on exit."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml

from . import database

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A server command on a free port of 127.0.0.1: launched, waited for until `ready_path`
    answers, stopped. Its output goes to `log_path`, whose end is in every start error."""

    name = "server"
    ready_path = "/health"

    def __init__(self, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def launch(self, args: list[str], env: dict[str, str], timeout: float, cwd: Path | None = None) -> None:
        self.process = subprocess.Popen([sys.executable, *args], cwd=cwd, env=env,
                                        stdout=self.log_path.open("w"), stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}{self.ready_path}", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not start:\n{self.log_tail()}")

    def log_tail(self, chars: int = 5000) -> str:
        return self.log_path.read_text()[-chars:]

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


class LiveServer(ServerProcess):
    """`manage.py runserver` (Daphne) in its own process, on its own models.yaml and database:
    a SQLite file in `root`, or where DATABASE_URL names a PostgreSQL server, a new database
    there (dropped at stop). `database_url` instead shares one database between servers."""

    name = "server"

    def __init__(self, root: Path, models: dict, env: dict[str, str] | None = None,
                 database_url: str | None = None):
        super().__init__(root / "server.log")
        self.root = root
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
        self.own_database = database_url is None and bool(self.env.get("DATABASE_URL"))
        if self.own_database:
            database_url = database.create_postgres_database(self.env["DATABASE_URL"], "mlx_live")
        if database_url:
            self.env["DATABASE_URL"] = database_url
        self.database: str | Path = database_url or root / "db.sqlite3"

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=self.env,
                              capture_output=True, text=True, check=True)

    def start(self) -> "LiveServer":
        self.manage("migrate", "--noinput", "-v", "0")
        self.launch(["manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload"], self.env, timeout=60,
                    cwd=REPO)
        return self

    def openai(self, api_key: str = "not-needed", timeout: float = 120):
        """An openai SDK client on this server, without retries (a test sees the first answer)."""
        from openai import OpenAI

        return OpenAI(base_url=f"{self.url}/v1", api_key=api_key, max_retries=0, timeout=timeout)

    def anthropic(self, api_key: str = "not-needed", timeout: float = 120):
        """An anthropic SDK client on this server (its base URL is the server's root, as
        Claude Code's ANTHROPIC_BASE_URL), without retries."""
        from anthropic import Anthropic

        return Anthropic(base_url=self.url, api_key=api_key, max_retries=0, timeout=timeout)

    def health(self) -> dict:
        return requests.get(f"{self.url}/health", timeout=10).json()

    def log_rows(self) -> list[dict]:
        return database.rows(self.database)

    def stop(self) -> None:
        super().stop()
        if self.own_database:
            database.drop_postgres_database(self.database)
            self.own_database = False


class DistributedServer(LiveServer):
    """A LiveServer as rank 0 of a `ranks`-rank mx.distributed ring on loopback, the other
    ranks the same `runserver` command (which follows rank 0 when MLX_RANK is not 0), each
    with the hostfile and MLX_RANK mlx.launch would set: the processes are the test's, so it
    can kill one and see what rank 0 does."""

    name = "rank 0"

    def __init__(self, root: Path, models: dict, ranks: int = 2, env: dict[str, str] | None = None):
        hostfile = root / "hostfile.json"
        hostfile.write_text(json.dumps([[f"127.0.0.1:{free_port()}"] for _ in range(ranks)]))
        super().__init__(root, models, env={**(env or {}), "MLX_HOSTFILE": str(hostfile), "MLX_RANK": "0"})
        self.ranks = ranks
        self.followers: list[subprocess.Popen] = []

    def start(self) -> "DistributedServer":
        for rank in range(1, self.ranks):
            self.followers.append(subprocess.Popen(
                [sys.executable, "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload"], cwd=REPO,
                env={**self.env, "MLX_RANK": str(rank)}, stdout=(self.root / f"rank{rank}.log").open("w"),
                stderr=subprocess.STDOUT))
        super().start()
        return self

    def follower_log(self, rank: int = 1) -> str:
        return (self.root / f"rank{rank}.log").read_text()

    def stop(self) -> None:
        super().stop()
        for process in self.followers:
            try:
                process.wait(15)  # rank 0's shutdown lets them exit
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

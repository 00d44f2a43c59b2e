"""Crash recovery on a live server and SmolLM2: `kill -9` mid-stream and mid-swap, then a
restart on the same database and folders: it starts, the database (WAL mode) is intact, every
request answered before the kill is in the log, and the models load whole."""
from __future__ import annotations

import signal
import sqlite3
import threading
import time

import pytest
import requests

from testkit.live import LiveServer

pytestmark = [pytest.mark.e2e, pytest.mark.model]

A, B = "smollm2", "smollm2-bf16"
ASK = [{"role": "user", "content": "Name a colour."}]


def chat(server: LiveServer, model: str = A, **body) -> requests.Response:
    return requests.post(f"{server.url}/v1/chat/completions", timeout=300,
                         json={"model": model, "messages": ASK, "max_tokens": 4, "temperature": 0, **body})


def test_kill_9_mid_stream_and_mid_swap_then_a_restart_loses_nothing_answered(tmp_path, smollm2_dir, smollm2_bf16_dir):
    models = {"default": A, "models": [
        {"id": A, "source": {"path": str(smollm2_dir)}, "context_length": 2048},
        {"id": B, "source": {"path": str(smollm2_bf16_dir)}, "context_length": 2048}]}
    server = LiveServer(tmp_path, models, {"MLX_SERVER_PRELOAD": A})
    with server.start():
        answered = [chat(server).json()["id"] for _ in range(3)]
        with sqlite3.connect(tmp_path / "db.sqlite3") as db:
            assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        stream = requests.post(f"{server.url}/v1/chat/completions", stream=True, timeout=300, json={
            "model": A, "messages": ASK, "max_tokens": 500, "stream": True})
        next(line for line in stream.iter_lines() if line)  # mid-stream
        server.process.send_signal(signal.SIGKILL)
        assert server.process.wait(30) == -signal.SIGKILL
    assert [r["request_id"] for r in server.log_rows()] == answered

    with server.start():  # the same database and folders
        assert chat(server).status_code == 200
        def swap() -> None:
            try:
                chat(server, model=B)
            except requests.ConnectionError:  # killed under it
                pass

        threading.Thread(target=swap, daemon=True).start()
        deadline = time.time() + 60
        while server.health().get("loading_model") != B and time.time() < deadline:
            time.sleep(0.02)  # until the swap is under way
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(30)

    with server.start():
        assert chat(server, model=B).status_code == 200 and chat(server).status_code == 200
        with sqlite3.connect(tmp_path / "db.sqlite3") as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    rows = server.log_rows()
    assert [r["request_id"] for r in rows[:3]] == answered and len(rows) == 6
    assert all(r["status_code"] == 200 for r in rows)

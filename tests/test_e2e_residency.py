"""A live server under a memory budget, stopped (SIGTERM) and started again on the same data
folder: the resident model's prompt cache is saved at shutdown and the first request after the
restart reuses it (cached_tokens), with the same greedy answer; /health shows the budget."""
from __future__ import annotations

import pytest

from testkit.live import LiveServer

pytestmark = pytest.mark.e2e

HISTORY = [
    {"role": "system", "content": "You are a terse assistant. " + "Remember the facts. " * 25},
    {"role": "user", "content": "The code word is PLUM. Say OK."},
    {"role": "assistant", "content": "OK."},
    {"role": "user", "content": "What is the code word?"},
]


def ask(server) -> tuple[str, int]:
    answer = server.openai().chat.completions.create(model="smollm2", messages=HISTORY, temperature=0, max_tokens=6)
    return answer.choices[0].message.content, answer.usage.prompt_tokens_details.cached_tokens


def test_a_restart_reuses_the_prompt_cache_saved_at_shutdown(tmp_path, smollm2_dir):
    models = {"models": [{"id": "smollm2", "source": {"path": str(smollm2_dir)}, "context_length": 2048}]}
    env = {"MLX_SERVER_MEMORY_BUDGET": "4000000000"}
    with LiveServer(tmp_path, models, env).start() as server:
        cold, cached = ask(server)
        health = server.health()
        assert cached == 0 and health["memory_budget_bytes"] == 4_000_000_000
        assert [m["id"] for m in health["resident"]] == ["smollm2"] and health["resident_bytes"] > 0
    saved = list((tmp_path / "data" / "prompt-cache").glob("smollm2-*/*.safetensors"))
    assert len(saved) == 1, (tmp_path / "server.log").read_text()[-3000:]
    with LiveServer(tmp_path, models, env).start() as server:
        again, cached = ask(server)
    assert cached > 100 and again == cold

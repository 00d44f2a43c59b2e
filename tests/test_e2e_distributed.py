"""One model over two processes (issue 23): `manage.py runserver` as rank 0 and rank 1 of an
mx.distributed ring on loopback, SmolLM2 split by tensor parallelism (9 heads over 2 ranks:
uneven KV groups) and by pipeline parallelism (15 layers each), held to one process serving the
same models.yaml: the same greedy tokens, streamed and not; the prefix cache, a client that
leaves and the log all hold; a rank killed mid-stream, or while idle, gives a clean error, 503
and /health saying so, while rank 0's own models go on serving."""
from __future__ import annotations

import signal
import time

import openai
import pytest
import requests

from testkit.live import DistributedServer, LiveServer
from tests import helpers

pytestmark = [pytest.mark.e2e, pytest.mark.model]

TENSOR, PIPELINE, LOCAL = "smollm2-tensor", "smollm2-pipeline", "smollm2-local"
STORY = [{"role": "user", "content": "Tell me a long story about a dragon."}]


def models(smollm2_dir) -> dict:
    source = {"path": str(smollm2_dir)}
    return {"default": TENSOR, "models": [
        {"id": TENSOR, "source": source, "context_length": 2048, "distributed": {"parallel": "tensor"}},
        {"id": PIPELINE, "source": source, "context_length": 2048, "distributed": {"parallel": "pipeline"}},
        {"id": LOCAL, "source": source, "context_length": 2048},  # rank 0's alone
    ]}


@pytest.fixture(scope="module")
def group(tmp_path_factory, smollm2_dir):
    with DistributedServer(tmp_path_factory.mktemp("ranks"), models(smollm2_dir)).start() as server:
        yield server


@pytest.fixture(scope="module")
def alone(tmp_path_factory, smollm2_dir):
    """The same models.yaml in one process: without a group, `distributed:` models run whole."""
    with LiveServer(tmp_path_factory.mktemp("alone"), models(smollm2_dir)).start() as server:
        yield server


def greedy(server, model: str, **body):
    return helpers.chat(server.openai(), model=model, messages=STORY, max_tokens=24, temperature=0,
                        logprobs=True, **body)


@pytest.mark.parametrize("model", [TENSOR, PIPELINE])
def test_two_ranks_give_one_process_greedy_tokens_streamed_and_not(group, alone, model):
    one = greedy(alone, model)
    two = greedy(group, model)
    assert [t.token for t in two.choices[0].logprobs.content] == [t.token for t in one.choices[0].logprobs.content]
    assert two.choices[0].message.content == one.choices[0].message.content
    assert two.usage.completion_tokens == one.usage.completion_tokens == 24
    gap = max(abs(a.logprob - b.logprob) for a, b in
              zip(two.choices[0].logprobs.content, one.choices[0].logprobs.content))
    # Pipeline runs the same float32 ops in the same order; tensor parallelism sums each
    # layer's halves across ranks, a rounding difference and no more.
    assert gap == 0.0 if model == PIPELINE else gap < 1e-3
    chunks = list(greedy(group, model, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == one.choices[0].message.content
    status = group.health()["distributed"]
    assert status == {"ranks": 2, "rank": 0, "backend": "ring", "state": "ok", "error": None}


def test_the_prefix_cache_and_a_client_that_leaves_keep_the_ranks_in_step(group):
    first = greedy(group, TENSOR)
    again = greedy(group, TENSOR)  # the same prompt: its prefix comes from every rank's cache
    assert again.usage.prompt_tokens_details.cached_tokens > 0
    assert again.choices[0].message.content == first.choices[0].message.content
    with requests.post(f"{group.url}/v1/chat/completions", stream=True, timeout=300, json={
            "model": TENSOR, "messages": STORY, "max_tokens": 400, "stream": True}) as left:
        lines = (line for line in left.iter_lines() if line)
        for _ in range(4):
            next(lines)
    # Both ranks stopped at the same token: the next request is served in step.
    deadline = time.time() + 60
    while group.health()["state"] != "idle" and time.time() < deadline:
        time.sleep(0.1)
    assert greedy(group, TENSOR).choices[0].message.content == first.choices[0].message.content
    rows = group.log_rows()
    assert rows[-2]["finish_reason"] == "cancelled" and rows[-1]["status_code"] == 200


def test_a_rank_killed_mid_stream_gives_a_clean_error_then_503_while_local_models_serve(tmp_path, smollm2_dir):
    with DistributedServer(tmp_path, models(smollm2_dir)).start() as server:
        client = server.openai()
        got = 0
        with pytest.raises(openai.APIError, match="lost a rank"):
            for chunk in client.chat.completions.create(model=TENSOR, messages=STORY, max_tokens=400,
                                                        temperature=0, stream=True):
                got += 1
                if got == 6:
                    server.followers[0].send_signal(signal.SIGKILL)
        assert 6 <= got < 400
        health = requests.get(f"{server.url}/health", timeout=10)
        assert health.status_code == 503 and health.json()["status"] == "unavailable"
        assert health.json()["distributed"]["state"] == "lost"
        refused = requests.post(f"{server.url}/v1/chat/completions", timeout=60, json={
            "model": PIPELINE, "messages": STORY, "max_tokens": 4})
        helpers.assert_openai_error(refused, 503, code="distributed_rank_lost")
        assert greedy(server, LOCAL).usage.completion_tokens == 24  # rank 0's own model
        rows = server.log_rows()
        assert [r["status_code"] for r in rows[-2:]] == [503, 200]


def test_a_rank_that_dies_while_idle_shows_in_health(tmp_path, smollm2_dir):
    with DistributedServer(tmp_path, models(smollm2_dir)).start() as server:
        assert greedy(server, PIPELINE).usage.completion_tokens == 24
        server.followers[0].send_signal(signal.SIGKILL)
        deadline = time.time() + 30
        while server.health()["distributed"]["state"] == "ok" and time.time() < deadline:
            time.sleep(0.2)  # rank 0's heartbeat finds out
        assert server.health()["distributed"]["state"] == "lost"
        refused = requests.post(f"{server.url}/v1/chat/completions", timeout=60, json={
            "model": PIPELINE, "messages": STORY, "max_tokens": 4})
        helpers.assert_openai_error(refused, 503, code="distributed_rank_lost")

"""Graceful shutdown on a live server and SmolLM2: SIGTERM refuses new generations (503
`shutting_down` with Retry-After, logged), lets the answer in flight finish within
MLX_SERVER_SHUTDOWN_GRACE, cancels what is still going past it (logged as such), and the
process exits 0."""
from __future__ import annotations

import json
import signal

import pytest
import requests

from testkit.live import LiveServer

pytestmark = [pytest.mark.e2e, pytest.mark.model]

MODEL = "smollm2-135m-instruct"


def models(smollm2_dir) -> dict:
    return {"default": MODEL, "models": [{"id": MODEL, "source": {"path": str(smollm2_dir)}, "context_length": 2048}]}


def open_stream(server: LiveServer, bans: dict, max_tokens: int) -> requests.Response:
    """A streamed answer that runs to max_tokens (the end tokens banned), read up to its first
    token."""
    body = {"model": MODEL, "stream": True, "max_tokens": max_tokens, "temperature": 0, "logit_bias": bans,
            "messages": [{"role": "user", "content": "Count from one to a thousand."}]}
    response = requests.post(f"{server.url}/v1/chat/completions", json=body, stream=True, timeout=120)
    assert response.status_code == 200
    lines = response.iter_lines()
    for line in lines:
        if line.startswith(b"data: ") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
            break
    response.lines = lines
    return response


def frames(response: requests.Response) -> list[dict | str]:
    out = []
    for line in response.lines:
        if line.startswith(b"data: "):
            data = line[6:].decode()
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


@pytest.fixture
def bans(tokenizer) -> dict:
    return {str(tokenizer.convert_tokens_to_ids("<|im_end|>")): -100, str(tokenizer.eos_token_id): -100}


def test_sigterm_finishes_the_answer_in_flight_refuses_new_ones_and_exits_0(tmp_path, smollm2_dir, bans):
    with LiveServer(tmp_path, models(smollm2_dir), {"MLX_SERVER_SHUTDOWN_GRACE": "120",
                                                     "MLX_SERVER_PRELOAD": MODEL}).start() as server:
        stream = open_stream(server, bans, max_tokens=12)  # 1 of 12 tokens read
        server.process.send_signal(signal.SIGTERM)
        refused = requests.post(f"{server.url}/v1/chat/completions", timeout=30,
                                json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
        assert refused.json()["error"]["code"] == "shutting_down"
        rest = frames(stream)
        assert rest[-1] == "[DONE]" and rest[-2]["choices"][0]["finish_reason"] == "length"
        assert server.process.wait(60) == 0
        rows = server.log_rows()
    refused_row, answered = rows  # the refusal is written first: the stream's row at its end
    assert (refused_row["status_code"], refused_row["error_code"]) == (503, "shutting_down")
    assert (answered["status_code"], answered["outcome"], answered["completion_tokens"]) == (200, "ok", 12)


def test_past_the_grace_the_rest_is_cancelled_and_logged(tmp_path, smollm2_dir, bans):
    with LiveServer(tmp_path, models(smollm2_dir), {"MLX_SERVER_SHUTDOWN_GRACE": "1",
                                                     "MLX_SERVER_PRELOAD": MODEL}).start() as server:
        stream = open_stream(server, bans, max_tokens=1500)
        server.process.send_signal(signal.SIGTERM)
        with pytest.raises(requests.exceptions.ChunkedEncodingError):  # the stream is cut, no [DONE]
            frames(stream)
        assert server.process.wait(60) == 0
        (row,) = server.log_rows()
    assert (row["status_code"], row["outcome"], row["finish_reason"]) == (499, "cancelled", "cancelled")
    assert row["error"] == "server shutting down" and 1 <= row["completion_tokens"] < 1500

"""End to end: continuous batching (MLX_SERVER_BATCH_SIZE=4) on the real SmolLM2 import.

Every batched answer is checked against the same request on the session server, which runs
one request at a time (batching off): greedy decoding must give the same text, finish reason
and token count, streamed or not, whatever else shares the batch.
"""
from __future__ import annotations

import threading
import time

import pytest
import requests

from tests.fixtures_models import smollm2_entries
from testkit.live import LiveServer

pytestmark = pytest.mark.e2e

PROMPTS = ["What is the capital of France?", "Write a haiku about the sea.", "Count from one to ten.",
           "Name three colours of the rainbow."]
MAX = 12  # short answers: every token costs on a CPU


@pytest.fixture(scope="module")
def batch_server(tmp_path_factory, smollm2_dir, smollm2_bf16_dir):
    root = tmp_path_factory.mktemp("batch")
    models = {
        "default": "smollm2",
        "models": smollm2_entries(smollm2_dir, smollm2_bf16_dir),
    }
    with LiveServer(root, models, env={"MLX_SERVER_BATCH_SIZE": "4"}).start() as server:
        yield server


@pytest.fixture(scope="module")
def batch_client(batch_server):
    return batch_server.openai()


def ask(client, prompt, model="smollm2", stream=False, **kw):
    """(text, finish_reason, completion_tokens) of one greedy request."""
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "temperature": 0,
            "max_tokens": MAX, **kw}
    if not stream:
        r = client.chat.completions.create(**body)
        return r.choices[0].message.content, r.choices[0].finish_reason, r.usage.completion_tokens
    chunks = list(client.chat.completions.create(**body, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    return text, finish[-1], chunks[-1].usage.completion_tokens


def concurrently(*calls, delays=None):
    """Run the calls on their own threads (call i after delays[i] seconds); their results in
    order, and when each returned."""
    results, ended, errors = [None] * len(calls), [0.0] * len(calls), []
    delays = delays or [0.0] * len(calls)
    gate = threading.Barrier(len(calls))

    def run(i):
        gate.wait()
        time.sleep(delays[i])
        try:
            results[i] = calls[i]()
        except Exception as exc:  # asserted below
            errors.append(exc)
        ended[i] = time.perf_counter()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    return results, ended


@pytest.fixture(scope="module")
def reference(openai_client):
    """The same requests one at a time, batching off."""
    return {p: ask(openai_client, p) for p in PROMPTS}


def test_concurrent_greedy_requests_match_one_at_a_time(batch_client, batch_server, reference):
    results, _ = concurrently(*(lambda p=p, s=i % 2 == 0: ask(batch_client, p, stream=s)
                                for i, p in enumerate(PROMPTS)))
    assert results == [reference[p] for p in PROMPTS]
    health = batch_server.health()
    assert health["batch_size"] == 4 and health["batch_peak"] >= 3, health  # they did share steps


def test_cancelled_request_leaves_the_rest_of_the_batch_alone(batch_client, batch_server, reference, tokenizer):
    no_end = {str(tokenizer.convert_tokens_to_ids("<|im_end|>")): -100}

    def abandoned():
        body = {"model": "smollm2", "messages": [{"role": "user", "content": "Tell me a long story."}],
                "max_tokens": 1500, "temperature": 0, "logit_bias": no_end, "stream": True}
        with requests.post(f"{batch_server.url}/v1/chat/completions", json=body, stream=True, timeout=60) as r:
            chunks = (line for line in r.iter_lines() if line.startswith(b'data: {"id"'))
            next(chunks)  # the role chunk
            return b'"content":' in next(chunks)  # then leave after the first text

    results, _ = concurrently(abandoned, *(lambda p=p: ask(batch_client, p) for p in PROMPTS[:3]))
    assert results == [True] + [reference[p] for p in PROMPTS[:3]]
    time.sleep(0.5)
    row = next(r for r in reversed(batch_server.log_rows()) if r["outcome"] == "cancelled")
    assert row["finish_reason"] == "cancelled" and 1 <= row["completion_tokens"] < 200


def test_request_for_another_model_is_served_after_the_batch_drains(batch_client, batch_server, openai_client,
                                                                      reference):
    bf16_reference = ask(openai_client, PROMPTS[2], model="smollm2-bf16")
    swaps = batch_server.health()["swaps"]
    # Two in a batch; then one for the other model; then one more for the first model, which
    # must not jump the queue into the running batch ahead of the other model's request.
    results, ended = concurrently(
        lambda: ask(batch_client, PROMPTS[0]), lambda: ask(batch_client, PROMPTS[1], stream=True),
        lambda: ask(batch_client, PROMPTS[2], model="smollm2-bf16"), lambda: ask(batch_client, PROMPTS[3]),
        delays=[0.0, 0.0, 0.5, 1.0],
    )
    assert results == [reference[PROMPTS[0]], reference[PROMPTS[1]], bf16_reference, reference[PROMPTS[3]]]
    assert ended[2] < ended[3]
    assert batch_server.health()["swaps"] == swaps + 2  # to bf16 after the drain, and back


def test_stop_strings_and_max_tokens_per_request(batch_client, openai_client, reference):
    words = reference[PROMPTS[0]][0].split()
    stop = words[len(words) // 2]
    kwargs = [{"stop": [stop]}, {"max_tokens": 3}, {"max_tokens": 7, "stream": True},
              {"stop": ["zzz", "\n"], "stream": True}]
    expected = [ask(openai_client, p, **kw) for p, kw in zip(PROMPTS, kwargs)]
    assert expected[0][1] == "stop" and stop not in expected[0][0]
    assert expected[1][1:] == ("length", 3) and expected[2][1:] == ("length", 7)
    results, _ = concurrently(*(lambda p=p, kw=kw: ask(batch_client, p, **kw) for p, kw in zip(PROMPTS, kwargs)))
    assert results == expected

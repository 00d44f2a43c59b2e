"""End to end: the real `openai` SDK against `manage.py runserver` on the real SmolLM2 import.

No mocks: these requests go through Daphne, the views, the engine's worker and MLX.
"""
from __future__ import annotations

import json
import threading
import time

from functools import partial

import openai
import pytest
import requests

from tests import helpers

pytestmark = pytest.mark.e2e

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


chat = partial(helpers.chat, model="smollm2", messages=QUESTION, max_tokens=40)


def test_models_list_shows_registry_with_flags(openai_client, server):
    models = {m.id: m for m in openai_client.models.list().data}
    assert set(models) == {"smollm2-135m-instruct", "smollm2-135m-instruct-bf16", "absent-model"}
    bf16 = models["smollm2-135m-instruct"].model_dump()
    assert bf16["object"] == "model" and bf16["aliases"] == ["smollm2"]
    assert bf16["available"] is True and bf16["context_length"] == 2048
    assert models["absent-model"].model_dump()["available"] is False
    assert openai_client.models.retrieve("smollm2").id == "smollm2-135m-instruct"


def test_non_streamed_answer_and_real_usage(openai_client, tokenizer):
    response = chat(openai_client)
    choice = response.choices[0]
    assert "Paris" in choice.message.content
    assert choice.message.role == "assistant" and choice.finish_reason == "stop"
    assert response.model == "smollm2-135m-instruct" and response.id.startswith("chatcmpl-")
    prompt = tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True, tokenize=False)
    assert response.usage.prompt_tokens == len(tokenizer.encode(prompt, add_special_tokens=False))
    answer_tokens = len(tokenizer.encode(choice.message.content, add_special_tokens=False))
    assert response.usage.completion_tokens == answer_tokens + 1  # + the end-of-turn token
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


def test_streamed_equals_non_streamed_with_usage(openai_client):
    whole = chat(openai_client)
    chunks = list(chat(openai_client, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == whole.usage.model_dump()
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1


def test_tokens_arrive_as_they_are_made(openai_client, tokenizer):
    """The first chunk arrives well before the end: streaming is not buffered."""
    ban_end = {str(tokenizer.convert_tokens_to_ids("<|im_end|>")): -100, str(tokenizer.eos_token_id): -100}
    started = time.perf_counter()
    arrivals = []
    for chunk in chat(openai_client, messages=[{"role": "user", "content": "Tell me a long story."}],
                      max_tokens=60, logit_bias=ban_end, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.perf_counter() - started)
    total = time.perf_counter() - started
    assert len(arrivals) >= 40
    assert arrivals[0] < 0.5 * total, (arrivals[0], total)
    assert arrivals[len(arrivals) // 2] < 0.8 * total


def test_max_tokens_and_max_completion_tokens_cut_with_length(openai_client):
    for key in ("max_tokens", "max_completion_tokens"):
        response = openai_client.chat.completions.create(
            model="smollm2", messages=QUESTION, temperature=0, **{key: 3})
        assert response.choices[0].finish_reason == "length"
        assert response.usage.completion_tokens == 3


def test_stop_strings_are_never_emitted(openai_client):
    full = chat(openai_client).choices[0].message.content
    assert "Paris" in full
    cut = chat(openai_client, stop=["Paris", "zzz"])
    assert cut.choices[0].message.content == full[: full.index("Paris")]
    assert cut.choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].delta.content or "" for c in chat(openai_client, stop="Paris", stream=True)
                       if c.choices)
    assert streamed == full[: full.index("Paris")]


def test_seed_makes_sampling_repeatable(openai_client):
    def sample(seed):
        return chat(openai_client, messages=[{"role": "user", "content": "Name a colour."}],
                    temperature=1.0, top_p=0.95, seed=seed, max_tokens=20).choices[0].message.content

    assert sample(1234) == sample(1234)


def test_swap_between_models_frees_the_old_one(openai_client, server, settings):
    chat(openai_client, model="smollm2")
    before = server.health()
    assert before["loaded_model"] == "smollm2-135m-instruct"
    main_bytes = before["model_bytes"]

    swapped = chat(openai_client, model="smollm2-bf16")
    assert "Paris" in swapped.choices[0].message.content
    after = server.health()
    assert after["loaded_model"] == "smollm2-135m-instruct-bf16"
    assert after["swaps"] == before["swaps"] + 1
    bf16_bytes = after["model_bytes"]
    if settings.MLX_SERVER_GGUF_DTYPE == "float32":  # the main import is float32 here
        assert main_bytes > 1.9 * bf16_bytes  # float32 holds twice the bytes of bfloat16
    # Peak since the process started never held both models at once.
    assert after["memory"]["peak_bytes"] < main_bytes + bf16_bytes, after["memory"]
    assert after["memory"]["active_bytes"] < bf16_bytes + main_bytes / 2

    chat(openai_client, model="smollm2")
    assert server.health()["loaded_model"] == "smollm2-135m-instruct"
    rows = [r for r in server.log_rows() if r["swapped_from"]]
    assert rows[-1]["swapped_from"] == "smollm2-135m-instruct-bf16"


def test_concurrent_requests_for_two_models_are_served_in_turn(openai_client, server):
    expected = {m: chat(openai_client, model=m).choices[0].message.content for m in ("smollm2", "smollm2-bf16")}
    results, errors = {}, []

    def worker(i, model):
        try:
            results[i] = (model, chat(openai_client, model=model).choices[0].message.content)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i, m)) for i, m in enumerate(["smollm2", "smollm2-bf16"] * 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors
    assert len(results) == 4
    for model, content in results.values():
        assert content == expected[model]


def test_sdk_errors_for_bad_requests_and_server_keeps_serving(openai_client):
    with pytest.raises(openai.NotFoundError) as info:
        chat(openai_client, model="gpt-imaginary")
    assert info.value.body["code"] == "model_not_found" and info.value.body["param"] == "model"
    with pytest.raises(openai.NotFoundError) as info:
        chat(openai_client, model="absent-model")
    assert info.value.body["code"] == "model_not_available"
    with pytest.raises(openai.BadRequestError) as info:
        chat(openai_client, temperature=5)
    assert info.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as info:
        chat(openai_client, messages=[])
    with pytest.raises(openai.BadRequestError) as info:
        chat(openai_client, max_tokens=4000)
    assert info.value.body["code"] == "context_length_exceeded"
    assert "2048" in info.value.body["message"]
    assert "Paris" in chat(openai_client).choices[0].message.content


def test_a_prompt_of_megabytes_is_refused_by_its_characters_before_it_is_tokenized(server):
    """15 MiB took 12-16 s of both cores to tokenize before its 400; its characters alone say it
    cannot fit in 2048 tokens (the message counts characters, not tokens: nothing was tokenized)."""
    body = {"model": "smollm2", "max_tokens": 1, "messages": [{"role": "user", "content": "word " * (3 << 20)}]}
    response = requests.post(f"{server.url}/v1/chat/completions", json=body, timeout=120)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    assert f"hold {15 << 20} characters" in error["message"] and "2048" in error["message"]
    assert server.log_rows()[-1]["error_code"] == "context_length_exceeded"


def test_raw_malformed_json_and_error_in_log(server):
    response = requests.post(f"{server.url}/v1/chat/completions", data=b"{not json",
                             headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    row = server.log_rows()[-1]
    assert row["status_code"] == 400 and row["outcome"] == "error" and row["error_code"] == "invalid_json"
    assert row["request_body"] == "{not json"


def test_every_request_is_logged_with_timings(openai_client, server):
    before = len(server.log_rows())
    chat(openai_client)
    list(chat(openai_client, stream=True))
    with pytest.raises(openai.BadRequestError):
        chat(openai_client, top_p=7)
    rows = server.log_rows()[before:]
    assert [(r["stream"], r["status_code"], r["outcome"]) for r in rows] == [
        (0, 200, "ok"), (1, 200, "ok"), (0, 400, "error")]
    for row in rows[:2]:
        assert row["resolved_model"] == "smollm2-135m-instruct"
        assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
        assert 0 < row["ttft_ms"] <= row["latency_ms"]
        assert row["decode_tps"] > 0 and row["finish_reason"] == "stop"
        assert json.loads(row["request_body"])["model"] == "smollm2"
        assert "Paris" in row["response_body"]
    assert rows[2]["error_code"] == "invalid_request_error" and "top_p" in rows[2]["error"]


def test_disconnect_mid_stream_frees_the_worker(openai_client, server, tokenizer):
    ban_end = {str(tokenizer.convert_tokens_to_ids("<|im_end|>")): -100}
    body = {"model": "smollm2", "messages": [{"role": "user", "content": "Tell me a long story."}],
            "max_tokens": 1500, "temperature": 0, "logit_bias": ban_end, "stream": True}
    with requests.post(f"{server.url}/v1/chat/completions", json=body, stream=True, timeout=60) as r:
        lines = r.iter_lines()
        assert next(line for line in lines if line.startswith(b"data: {"))
    started = time.perf_counter()
    assert "Paris" in chat(openai_client).choices[0].message.content
    # 1,500 tokens would take far longer than this if the abandoned stream kept generating.
    assert time.perf_counter() - started < 30
    time.sleep(0.5)
    cancelled = [r for r in server.log_rows() if r["outcome"] == "cancelled"]
    assert cancelled and cancelled[-1]["stream"] == 1

"""End to end, operations: a live server with an API key, a queue bound, an idle TTL and a
corrupt model, on the real SmolLM2 imports (bfloat16 and float32, swapped between).

Covers disconnects (streamed and not), a storm of concurrent clients over two models, the
429 bound, TTL unloads, load failures, the key, /metrics, a bad-input corpus and a bounded
schemathesis run.
"""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import openai
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from testkit.live import LiveServer
from tests import helpers

pytestmark = pytest.mark.e2e

KEY = "sk-ops-test"
AUTH = {"Authorization": f"Bearer {KEY}"}
MAX_BODY = 2_000_000
MAIN, BF16, TTL_MODEL = "smollm2-135m-instruct", "smollm2-135m-instruct-bf16", "smollm2-ttl"
MAX_QUEUE = 8
STORY = [{"role": "user", "content": "Tell me a long story about a dragon."}]
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def ops_server(tmp_path_factory, smollm2_dir, smollm2_bf16_dir):
    root = tmp_path_factory.mktemp("ops")
    broken = root / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text((smollm2_dir / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    models = {
        "default": MAIN,
        "models": [
            {"id": MAIN, "aliases": ["smollm2"], "source": {"path": str(smollm2_dir)}, "context_length": 2048},
            {"id": BF16, "aliases": ["smollm2-bf16"], "source": {"path": str(smollm2_bf16_dir)},
             "context_length": 2048},
            {"id": TTL_MODEL, "source": {"path": str(smollm2_dir)}, "context_length": 2048, "ttl": 2},
            {"id": "broken", "source": {"path": str(broken)}},
        ],
    }
    with LiveServer(root, models, env={
        "MLX_SERVER_API_KEY": KEY, "MLX_SERVER_MAX_QUEUE": str(MAX_QUEUE), "MLX_SERVER_PRELOAD": MAIN,
        "MLX_SERVER_MAX_BODY_BYTES": str(MAX_BODY),
    }).start() as server:
        yield server


@pytest.fixture(scope="module")
def client(ops_server):
    return ops_server.openai(api_key=KEY, timeout=300)


@pytest.fixture(scope="module")
def no_end(tokenizer):
    """logit_bias that bans the end-of-turn tokens, so a generation runs to max_tokens."""
    return {str(tokenizer.convert_tokens_to_ids("<|im_end|>")): -100, str(tokenizer.eos_token_id): -100}


chat = partial(helpers.chat, model=MAIN, messages=QUESTION, max_tokens=24)


def health(server) -> dict:
    return requests.get(f"{server.url}/health", timeout=30).json()


def metrics(server) -> dict[tuple, float]:
    """Every sample of /metrics, keyed by (name, sorted labels)."""
    text = requests.get(f"{server.url}/metrics", headers=AUTH, timeout=30).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(values: dict, name: str, **labels) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_until(predicate, timeout: float = 30.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def timed_story(client, no_end) -> float:
    started = time.perf_counter()
    reply = chat(client, messages=STORY, max_tokens=32, logit_bias=no_end)
    assert reply.usage.completion_tokens == 32
    return time.perf_counter() - started


def test_the_key_guards_v1_but_not_health(ops_server):
    response = requests.get(f"{ops_server.url}/v1/models", timeout=30)
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    bad = ops_server.openai(api_key="sk-wrong")
    with pytest.raises(openai.AuthenticationError):
        chat(bad)
    assert requests.get(f"{ops_server.url}/health", timeout=30).status_code == 200
    assert requests.get(f"{ops_server.url}/v1/models", headers=AUTH, timeout=30).status_code == 200


def test_preloaded_model_is_reported_loaded(ops_server, client):
    assert wait_until(lambda: health(ops_server)["loaded_model"] == MAIN)
    listed = {m.id: m.model_dump() for m in client.models.list().data}
    assert listed[MAIN]["loaded"] is True and listed[BF16]["loaded"] is False
    assert listed[TTL_MODEL]["ttl"] == 2 and listed[MAIN]["ttl"] is None


def test_stream_disconnect_stops_generation_and_the_next_request_runs_at_normal_speed(
        ops_server, client, no_end):
    chat(client)  # warm
    baseline = timed_story(client, no_end)
    body = {"model": MAIN, "messages": STORY, "max_tokens": 1500, "temperature": 0, "logit_bias": no_end,
            "stream": True}
    with requests.post(f"{ops_server.url}/v1/chat/completions", json=body, headers=AUTH, stream=True,
                       timeout=60) as response:
        chunks = (line for line in response.iter_lines() if line.startswith(b'data: {"id"'))
        next(chunks)  # the role chunk
        assert b'"content":' in next(chunks)  # the first generated text
    after = timed_story(client, no_end)
    # An abandoned 1,500-token generation still running would take the worker for minutes.
    assert after < 2 * baseline + 1.0, (baseline, after)
    row = next(r for r in reversed(ops_server.log_rows()) if r["outcome"] == "cancelled")
    assert row["stream"] == 1 and row["status_code"] == 499 and row["finish_reason"] == "cancelled"
    assert 1 <= row["completion_tokens"] < 1500


def test_non_streamed_disconnect_is_cancelled_too(ops_server, client, no_end):
    before = len(ops_server.log_rows())
    body = {"model": MAIN, "messages": STORY, "max_tokens": 1500, "temperature": 0, "logit_bias": no_end}
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(f"{ops_server.url}/v1/chat/completions", json=body, headers=AUTH, timeout=(10, 2))
    assert wait_until(lambda: len(ops_server.log_rows()) > before)
    row = ops_server.log_rows()[-1]
    assert row["stream"] == 0 and row["outcome"] == "cancelled" and row["status_code"] == 499
    assert 1 <= row["completion_tokens"] < 1500
    assert wait_until(lambda: health(ops_server)["state"] == "idle", timeout=10)
    assert "Paris" in chat(client).choices[0].message.content


def test_storm_of_clients_over_two_models_all_succeed_and_never_hold_both(ops_server, client):
    """4 clients over 2 models (2 each) x 10 requests each, all at once."""
    short = {"max_tokens": 6}  # the storm is about turns, swaps and memory, not long answers
    expected = {m: chat(client, model=m, **short).choices[0].message.content for m in (MAIN, BF16)}
    sizes = {}
    for model in (MAIN, BF16):
        chat(client, model=model)
        sizes[model] = health(ops_server)["model_bytes"]
    both = sizes[MAIN] + sizes[BF16]
    swaps_before = health(ops_server)["swaps"]
    active_seen, stop = [], threading.Event()

    def watch_memory():
        while not stop.is_set():
            active_seen.append(health(ops_server)["memory"]["active_bytes"])
            time.sleep(0.2)

    def one_client(model: str) -> list[str]:
        return [chat(client, model=model, **short).choices[0].message.content for _ in range(10)]

    watcher = threading.Thread(target=watch_memory)
    watcher.start()
    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        futures = [(m, pool.submit(one_client, m)) for m in (MAIN, BF16) * 2]
        answers = [(m, f.result(timeout=1800)) for m, f in futures]
    wall = time.perf_counter() - started
    stop.set()
    watcher.join()

    for model, contents in answers:
        assert contents == [expected[model]] * 10
    after = health(ops_server)
    assert after["memory"]["peak_bytes"] < both, (after["memory"], sizes)
    assert max(active_seen) < both, (max(active_seen), sizes)
    with open(f"/proc/{ops_server.process.pid}/status") as status:
        rss_peak = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM"))
    print(f"\nstorm: 40 requests, 4 clients, 2 models: {wall:.1f}s wall, {after['swaps'] - swaps_before} swaps, "
          f"MLX peak {after['memory']['peak_bytes'] / 1e6:.0f} MB (main {sizes[MAIN] / 1e6:.0f} MB + "
          f"bf16 {sizes[BF16] / 1e6:.0f} MB = {both / 1e6:.0f} MB), max active seen {max(active_seen) / 1e6:.0f} MB, "
          f"process RSS peak {rss_peak / 1e6:.0f} MB")
    rows = [r for r in ops_server.log_rows() if r["endpoint"] == "/v1/chat/completions"][-40:]
    assert all(r["status_code"] == 200 and r["outcome"] == "ok" for r in rows)


def test_beyond_the_queue_bound_requests_get_429_with_retry_after(ops_server, no_end):
    body = {"model": MAIN, "messages": STORY, "max_tokens": 24, "temperature": 0, "logit_bias": no_end}
    barrier = threading.Barrier(16)

    def one(_):
        barrier.wait()
        return requests.post(f"{ops_server.url}/v1/chat/completions", json=body, headers=AUTH, timeout=300)

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(one, range(16)))
    statuses = sorted(r.status_code for r in responses)
    refused = [r for r in responses if r.status_code == 429]
    # One runs and MAX_QUEUE wait; the rest are refused (fewer if a place frees up meanwhile).
    assert set(statuses) == {200, 429} and statuses.count(200) >= MAX_QUEUE + 1, statuses
    for response in refused:
        error = response.json()["error"]
        assert error["code"] == "queue_full" and int(response.headers["Retry-After"]) >= 1
    assert all(r.json()["usage"]["completion_tokens"] == 24 for r in responses if r.status_code == 200)


def test_idle_model_unloads_after_its_ttl(ops_server, client):
    chat(client, model=TTL_MODEL)
    now = health(ops_server)
    assert now["loaded_model"] == TTL_MODEL and now["ttl_seconds"] == 2
    assert wait_until(lambda: health(ops_server)["loaded_model"] is None, timeout=15)
    listed = {m.id: m.model_dump() for m in client.models.list().data}
    assert not any(m["loaded"] for m in listed.values())
    assert sample(metrics(ops_server), "mlx_server_model_unloads_total", model=TTL_MODEL, reason="ttl") == 1
    assert "Paris" in chat(client).choices[0].message.content  # a request loads a model again


def test_corrupt_model_is_503_and_other_models_still_load(ops_server, client):
    chat(client, model=BF16)
    with pytest.raises(openai.InternalServerError) as info:
        chat(client, model="broken")
    assert info.value.status_code == 503
    assert info.value.body["code"] == "model_load_failed" and "broken" in info.value.body["message"]
    assert health(ops_server)["loaded_model"] is None
    assert "Paris" in chat(client, model=BF16).choices[0].message.content
    assert sample(metrics(ops_server), "mlx_server_model_loads_total", model="broken", result="failed") == 1


def test_metrics_move_with_requests(ops_server, client):
    chat(client)
    before = metrics(ops_server)
    reply = chat(client)
    with pytest.raises(openai.BadRequestError):
        chat(client, temperature=9)
    chat(client, model=BF16)
    after = metrics(ops_server)

    def moved(name, **labels):
        return sample(after, name, **labels) - sample(before, name, **labels)

    ok = {"endpoint": "/v1/chat/completions", "model": MAIN, "status": "200", "outcome": "ok"}
    assert moved("mlx_server_requests_total", **ok) == 1
    # Refused before the model was resolved: no model label.
    assert moved("mlx_server_requests_total", endpoint="/v1/chat/completions", model="", status="400",
                 outcome="error") == 1
    assert moved("mlx_server_prompt_tokens_total", model=MAIN) == reply.usage.prompt_tokens
    assert moved("mlx_server_completion_tokens_total", model=MAIN) == reply.usage.completion_tokens
    assert moved("mlx_server_time_to_first_token_seconds_count", model=MAIN) == 1
    assert moved("mlx_server_decode_tokens_per_second_count", model=MAIN) == 1
    assert moved("mlx_server_model_swaps_total", model=BF16) == 1
    assert moved("mlx_server_model_load_seconds_count", model=BF16) == 1
    assert moved("mlx_server_model_unloads_total", model=MAIN, reason="swap") == 1
    assert sample(after, "mlx_server_queue_depth") == 0
    assert sample(after, "mlx_server_model_loaded_bytes", model=BF16) > 0


# --- bad input ---------------------------------------------------------------------------

OK = {"model": MAIN, "messages": [{"role": "user", "content": "hi"}]}


def with_(**fields) -> bytes:
    return json.dumps({**OK, **fields}).encode()


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


CORPUS: list[tuple[str, bytes]] = [
    ("empty body", b""),
    ("not json", b"{model: x"),
    ("truncated json", with_()[:-5]),
    ("json array", b"[1, 2]"),
    ("json string", b'"hello"'),
    ("json null", b"null"),
    ("json number", b"42"),
    ("invalid utf-8", b'{"model": "\xff\xfe", "messages": []}'),
    ("utf-16 body", json.dumps(OK).encode("utf-16")),
    ("lone surrogate escape", with_()[:-2] + b', "user": "\\ud800"}'),
    ("deeply nested array body", nested(100_000).encode()),
    ("deeply nested junk in a field", b'{"model": "x", "messages": ' + nested(50_000).encode() + b"}"),
    ("nested junk as content", with_(messages=[{"role": "user", "content": [[[[{"type": [[]]}]]]]}])),
    ("10 MB of junk", b"{" + b"\x01junk" * 2_000_000),
    ("10 MB model name", with_(model="m" * 10_000_000)),
    ("10 MB array of messages", with_(messages=[0] * 3_000_000)),
    ("10 MB content part list", with_(messages=[{"role": "user", "content": [{"type": "x"}] * 800_000}])),
    ("missing model", json.dumps({"messages": OK["messages"]}).encode()),
    ("missing messages", json.dumps({"model": MAIN}).encode()),
    ("model null", with_(model=None)),
    ("model a list", with_(model=[MAIN])),
    ("model an object", with_(model={"id": MAIN})),
    ("unknown model", with_(model="gpt-imaginary")),
    ("messages an object", with_(messages={"role": "user", "content": "hi"})),
    ("messages empty", with_(messages=[])),
    ("message a string", with_(messages=["hi"])),
    ("message null", with_(messages=[None])),
    ("role missing", with_(messages=[{"content": "hi"}])),
    ("role unknown", with_(messages=[{"role": "root", "content": "hi"}])),
    ("role a number", with_(messages=[{"role": 1, "content": "hi"}])),
    ("content an object", with_(messages=[{"role": "user", "content": {"text": "hi"}}])),
    ("content a bool", with_(messages=[{"role": "user", "content": True}])),
    ("unknown part type", with_(messages=[{"role": "user", "content": [{"type": "audio", "audio": "x"}]}])),
    ("part without type", with_(messages=[{"role": "user", "content": [{"text": "hi"}]}])),
    ("part a string", with_(messages=[{"role": "user", "content": ["hi"]}])),
    ("text part text a number", with_(messages=[{"role": "user", "content": [{"type": "text", "text": 5}]}])),
    ("image part without url", with_(messages=[{"role": "user", "content": [{"type": "image_url"}]}])),
    ("image on a text-only model", with_(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}])),
    ("system message with image part", with_(messages=[{"role": "system", "content": [
        {"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/y.png"}}]}])),
    ("tool message without id", with_(messages=[{"role": "tool", "content": "42"}])),
    ("assistant with neither content nor calls", with_(messages=[{"role": "assistant"}])),
    ("negative max_tokens", with_(max_tokens=-5)),
    ("zero max_tokens", with_(max_tokens=0)),
    ("huge max_tokens", with_(max_tokens=10**40)),
    ("max_tokens over the context", with_(max_tokens=1_000_000)),
    ("max_tokens a string", with_(max_tokens="10")),
    ("max_tokens a float", with_(max_tokens=10.5)),
    ("max_tokens a bool", with_(max_tokens=True)),
    ("temperature NaN", with_()[:-1] + b', "temperature": NaN}'),
    ("temperature Infinity", with_()[:-1] + b', "temperature": Infinity}'),
    ("temperature 1e309", with_()[:-1] + b', "temperature": 1e309}'),
    ("temperature negative", with_(temperature=-1)),
    ("top_p negative", with_(top_p=-0.5)),
    ("huge seed", with_(seed=10**40)),
    ("seed a float", with_(seed=1.5)),
    ("n past MLX_SERVER_MAX_CHOICES", with_(n=9)),
    ("stream a number", with_(stream=1)),
    ("stream_options a list", with_(stream=True, stream_options=[True])),
    ("stop a dict", with_(stop={"a": 1})),
    ("stop list of numbers", with_(stop=[1, 2])),
    ("logit_bias a list", with_(logit_bias=[1, 2])),
    ("logit_bias value too big", with_(logit_bias={"1": 1000})),
    ("logit_bias key not a number", with_(logit_bias={"token": 1})),
    ("frequency_penalty a string", with_(frequency_penalty="high")),
    ("tools an object", with_(tools={"type": "function"})),
    ("tool of unknown type", with_(tools=[{"type": "retrieval"}])),
    ("tool parameters a string", with_(tools=[{"type": "function", "function": {"name": "f", "parameters": "x"}}])),
    ("response_format a string", with_(response_format="json")),
]


def test_bad_input_corpus_gets_4xx_json_errors_all_logged_and_the_server_keeps_serving(ops_server, client):
    assert len(CORPUS) >= 50
    before = len(ops_server.log_rows())
    statuses = []
    for name, body in CORPUS:
        response = requests.post(f"{ops_server.url}/v1/chat/completions", data=body, timeout=120,
                                 headers={**AUTH, "Content-Type": "application/json"})
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text[:300])
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"], (name, error)
        statuses.append(response.status_code)
    rows = ops_server.log_rows()[before:]
    assert [r["status_code"] for r in rows] == statuses
    assert all(r["outcome"] == "error" and r["error"] for r in rows)
    assert "Paris" in chat(client).choices[0].message.content


# --- schemathesis ------------------------------------------------------------------------


def test_schemathesis_finds_no_server_errors(ops_server, tmp_path):
    """Schema-driven fuzzing of the /v1 operations no other module fuzzes, bounded: no 5xx.
    (The Messages, Responses, embeddings and completions endpoints have their own runs, with
    their own generation bounds, in their e2e modules.)

    Positive cases name real models with max_tokens capped (so they generate, briefly);
    negative cases name no real model, so whatever slips past validation ends in a 404
    rather than a long generation.
    """
    before = len(ops_server.log_rows())
    schema = requests.get(f"{ops_server.url}/v1/openapi.json", headers=AUTH, timeout=30).json()
    chat_schema = schema["components"]["schemas"]["ChatCompletion"]
    request = chat_schema["properties"]
    for field in ("max_tokens", "max_completion_tokens"):
        request[field]["maximum"] = 16
    # Every positive case generates briefly: a bound it cannot leave out (the server's default is
    # 2,048 tokens), and few choices (n up to MLX_SERVER_MAX_CHOICES multiplies the tokens).
    chat_schema["required"] = [*chat_schema.get("required", []), "max_completion_tokens"]
    request["max_completion_tokens"]["nullable"] = False
    request["n"]["maximum"] = 2
    # Loading the deliberately corrupt model is a correct 503 (test_corrupt_model_is_503...):
    # the control endpoints name the loadable models, or none at all.
    for operation in ("/v1/models/{model}/load", "/v1/models/{model}/unload"):
        for parameter in schema["paths"][operation]["post"]["parameters"]:
            if parameter["name"] == "model":
                parameter["schema"] = {"type": "string", "enum": [MAIN, BF16, "no-such-model"]}
    request["model"] = {"type": "string", "enum": [MAIN, BF16, "smollm2"]}
    others = ("--exclude-path-regex", "^/v1/(messages|responses|embeddings|completions)")
    positive = helpers.schemathesis_run(ops_server, schema, tmp_path, "positive", 25, key=KEY, extra=others)
    request["model"] = {"type": "string", "enum": ["no-such-model"]}
    negative = helpers.schemathesis_run(ops_server, schema, tmp_path, "negative", 40, key=KEY, extra=others)
    for run in (positive, negative):
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    rows = ops_server.log_rows()[before:]
    assert len(rows) > 50
    server_errors = [r for r in rows if r["status_code"] >= 500]
    assert not server_errors, server_errors[:3]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_past_the_bound_is_a_413_logged_and_the_server_keeps_serving(ops_server, client, chunked):
    """Daphne's door counts the body past MLX_SERVER_MAX_BODY_BYTES without keeping it
    (tests/test_body_limit.py); Django answers from the length it reports."""
    head = b'{"model": "smollm2", "messages": [{"role": "user", "content": "'
    size = 3 * MAX_BODY
    body = head + b"x" * (size - len(head) - 4) + b'"}]}'
    data = (body[i:i + 65536] for i in range(0, size, 65536)) if chunked else body
    response = requests.post(f"{ops_server.url}/v1/chat/completions", data=data, timeout=60,
                             headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    row = ops_server.log_rows()[-1]
    assert row["status_code"] == 413 and row["error_code"] == "request_too_large"
    assert chat(client, max_tokens=1).choices[0].finish_reason in ("stop", "length")

"""Anthropic's Messages API through the real `anthropic` SDK and the views, on a scripted
backend that answers exact text: the message object and stream events held to the committed
schemas, tool_use in both tool formats, the request that reaches the engine (conversion,
tool_choice, the billing line), count_tokens, errors as the SDK's exception classes, the key,
and a bad-input corpus (400s in Anthropic's shape, each logged)."""
from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import anthropic
import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from inference.api.anthropic.errors import render_error
from inference.api.errors import QueueFull
from inference.engine import ChatRequest, Engine
from inference.engine.scheduler import Job
from inference.models import RequestLog, ToolCallLog
from registry.active import get_registry
from tests.helpers import (
    MESSAGES_URL, anthropic_in_process, assert_anthropic_error, assert_schema, sse_events,
)
from tests.scripted import ScriptedWorld

pytestmark = pytest.mark.django_db(transaction=True)  # streamed rows are written from another thread

ASK = [{"role": "user", "content": "Weather in Paris?"}]
WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
QWEN_ANSWER = ["Let me check.", "\n<tool", "_call>\n{\"name\": \"get_weather\", ",
               "\"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"]
GEMMA_ANSWER = ["```tool", "_code\nget_weather(city=", "\"Oslo\")\n```"]
# Claude Code's system prompt opens with a billing line whose cch= changes on every request.
BILLING = "x-anthropic-billing-header: cc_version=2.1.117.48f; cc_entrypoint=cli; cch=71fea;"
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a5f0a5da0000000049454e44ae426082"
)).decode()


@pytest.fixture
def scripted(models_yaml, serve):
    room = {"context_length": 8192}  # the scripted prompt is a token per character
    models_yaml("plain", **room)
    models_yaml("qwen-like", tool_format="qwen_tool_call", **room)
    models_yaml("gemma-like", tool_format="gemma_tool_code", **room)
    models_yaml("seeing", backend="vision", capabilities=["chat", "vision"], **room)
    return serve


def sdk(call, api_key: str = "not-needed"):
    """Run `call(client)` (a coroutine function) on an in-process SDK client."""
    async def go():
        async with anthropic_in_process(api_key) as client:
            return await call(client)
    return asyncio.run(go())


def create(**body):
    return sdk(lambda c: c.messages.create(**{"max_tokens": 64, "messages": ASK, **body}))


def raw(body: dict, path: str = MESSAGES_URL, **headers):
    return Client().post(path, data=json.dumps(body), content_type="application/json", headers=headers)


def raw_stream(body: dict) -> list[tuple[str, dict]]:
    from django.test import AsyncClient

    async def read():
        response = await AsyncClient().post(MESSAGES_URL, content_type="application/json",
                                            data=json.dumps({**body, "stream": True}))
        assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
        return b"".join([chunk async for chunk in response.streaming_content]).decode()

    return sse_events(asyncio.run(read()))


def test_plain_message_is_the_documented_object_and_logged(scripted):
    scripted(["Hel", "lo"])
    body = raw({"model": "plain", "max_tokens": 16, "messages": ASK}).json()
    assert_schema(body, "anthropic/Message")
    assert body["content"] == [{"type": "text", "text": "Hello"}]
    assert (body["stop_reason"], body["stop_sequence"]) == ("end_turn", None)
    row = RequestLog.objects.get()
    assert (row.endpoint, row.status_code, row.request_id) == (MESSAGES_URL, 200, body["id"])
    assert body["usage"] == {"input_tokens": row.prompt_tokens, "output_tokens": 2,
                             "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}


def test_sdk_create_reads_text_usage_and_stop_reasons(scripted):
    scripted(["Hel", "lo", " there"])
    message = create(model="plain")
    assert message.content[0].text == "Hello there" and message.stop_reason == "end_turn"
    assert create(model="plain", max_tokens=2).stop_reason == "max_tokens"
    stopped = create(model="plain", stop_sequences=["zz", "lo "])
    assert (stopped.stop_reason, stopped.stop_sequence, stopped.content[0].text) == ("stop_sequence", "lo ", "Hel")


def test_stream_events_in_anthropic_order_and_shapes(scripted):
    scripted(["Hel", "lo"])
    events = raw_stream({"model": "plain", "max_tokens": 16, "messages": ASK})
    for _, data in events:
        assert_schema(data, "anthropic/MessageStreamEvent")
    names = [name for name, _ in events]
    assert names == ["message_start", "ping", "content_block_start", "content_block_delta",
                     "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert events[0][1]["message"]["usage"]["input_tokens"] == RequestLog.objects.get().prompt_tokens
    assert "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta") == "Hello"
    assert events[-2][1]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events[-2][1]["usage"]["output_tokens"] == 2


def test_sdk_stream_helper_gives_text_and_final_message(scripted):
    scripted(["Hel", "lo"])

    async def call(client):
        async with client.messages.stream(model="plain", max_tokens=16, messages=ASK) as stream:
            texts = [text async for text in stream.text_stream]
            return texts, await stream.get_final_message()

    texts, final = sdk(call)
    assert texts == ["Hel", "lo"] and final.content[0].text == "Hello" and final.stop_reason == "end_turn"


@pytest.mark.parametrize("model, answer, city", [("qwen-like", QWEN_ANSWER, "Paris"),
                                                  ("gemma-like", GEMMA_ANSWER, "Oslo")])
def test_tool_use_block_whole_and_streamed(scripted, model, answer, city):
    scripted(answer)
    message = create(model=model, tools=[WEATHER])
    assert message.stop_reason == "tool_use"
    call = message.content[-1]
    assert (call.type, call.name, call.input) == ("tool_use", "get_weather", {"city": city})
    assert ToolCallLog.objects.get().call_id == call.id
    assert_schema(raw({"model": model, "max_tokens": 64, "messages": ASK, "tools": [WEATHER]}).json(),
                  "anthropic/Message")

    events = raw_stream({"model": model, "max_tokens": 64, "messages": ASK, "tools": [WEATHER]})
    for _, data in events:
        assert_schema(data, "anthropic/MessageStreamEvent")
    starts = [d for n, d in events if n == "content_block_start"]
    tool_block = starts[-1]["content_block"]
    assert tool_block["type"] == "tool_use" and tool_block["name"] == "get_weather"
    partial = "".join(d["delta"]["partial_json"] for n, d in events
                      if n == "content_block_delta" and d["index"] == starts[-1]["index"])
    assert json.loads(partial) == {"city": city}
    assert [d["index"] for d in starts] == list(range(len(starts)))
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"

    async def call_stream(client):
        async with client.messages.stream(model=model, max_tokens=64, messages=ASK, tools=[WEATHER]) as stream:
            return await stream.get_final_message()

    assert sdk(call_stream).content[-1].input == {"city": city}


def test_tool_result_round_trip_reaches_the_engine_as_chat_messages(scripted):
    engine = scripted(["It is sunny."])
    message = create(model="qwen-like", tools=[WEATHER], system=[
        {"type": "text", "text": BILLING}, {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
    ], messages=[
        *ASK,
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"},
                                          {"type": "text", "text": "Checking."},
                                          {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": [{"type": "text", "text": "18C, sun"}]},
                                     {"type": "text", "text": "And so?"}]},
    ])
    assert message.content[0].text == "It is sunny."
    sent = engine.requests[-1].messages
    assert sent[0] == {"role": "system", "content": "You are terse."}
    assert sent[2]["tool_calls"] == [{"id": "toolu_1", "type": "function",
                                      "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]
    assert sent[2]["content"] == "Checking."
    assert sent[3] == {"role": "tool", "tool_call_id": "toolu_1", "content": "18C, sun"}
    assert sent[4] == {"role": "user", "content": [{"type": "text", "text": "And so?"}]}


@pytest.mark.parametrize("choice, forced", [({"type": "any"}, True), ({"type": "tool", "name": "get_weather"}, True),
                                            ({"type": "auto"}, False)])
def test_tool_choice_any_and_tool_force_a_call(scripted, choice, forced):
    engine = scripted(QWEN_ANSWER)
    create(model="qwen-like", tools=[WEATHER], tool_choice=choice)
    request = engine.requests[-1]
    assert (request.params.grammar is not None) == forced and request.tools


def test_tool_choice_none_hides_the_tools(scripted):
    engine = scripted(["No tools."])
    assert create(model="qwen-like", tools=[WEATHER], tool_choice={"type": "none"}).stop_reason == "end_turn"
    assert engine.requests[-1].tools is None


def test_sampling_parameters_reach_the_engine(scripted):
    engine = scripted(["x"])
    # This SDK release no longer has temperature/top_p/top_k arguments; the API still takes them.
    create(model="plain", extra_body={"temperature": 0.3, "top_p": 0.9, "top_k": 40}, metadata={"user_id": "u1"},
           thinking={"type": "enabled", "budget_tokens": 1024}, max_tokens=2048)
    params = engine.requests[-1].params
    assert (params.temperature, params.top_p, params.top_k, params.max_tokens) == (0.3, 0.9, 40, 2048)


def test_image_blocks_become_the_engines_images(scripted):
    engine = scripted(["A dot."])
    create(model="seeing", messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "text", "text": "What is this?"}]}])
    request = engine.requests[-1]
    assert len(request.images) == 1 and request.messages[0]["content"][0]["type"] == "image_url"
    logged = RequestLog.objects.get().request_body
    assert PNG not in logged and "base64 chars omitted" in logged


def test_count_tokens_is_the_prompt_the_engine_renders(scripted):
    engine = scripted(["Hello"])
    counted = sdk(lambda c: c.messages.count_tokens(model="plain", messages=ASK, system="Be brief."))
    assert_schema(counted.model_dump(), "anthropic/CountTokensResponse")
    message = create(model="plain", system="Be brief.")
    assert counted.input_tokens == message.usage.input_tokens > 0
    assert engine.requests[0].count_only and not engine.requests[1].count_only
    assert [r.endpoint for r in RequestLog.objects.order_by("id")] == [f"{MESSAGES_URL}/count_tokens", MESSAGES_URL]


def test_errors_raise_the_sdks_exception_classes(scripted):
    scripted(["x"])
    with pytest.raises(anthropic.NotFoundError) as not_found:
        create(model="no-such-model")
    assert not_found.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as bad:
        sdk(lambda c: c.messages.create(model="plain", max_tokens=0, messages=ASK))
    assert bad.value.status_code == 400 and bad.value.body["type"] == "error"


def test_a_full_queue_is_overloaded_529_with_retry_after():
    response = render_error(QueueFull("busy", retry_after=3))
    assert response.status_code == 529 and response["Retry-After"] == "3"
    body = json.loads(response.content)
    assert_schema(body, "anthropic/ErrorResponse")
    assert body["error"]["type"] == "overloaded_error"


def test_the_key_as_x_api_key_or_bearer(scripted, settings):
    settings.MLX_SERVER_API_KEY = "sk-test"
    scripted(["ok"])
    body = {"model": "plain", "max_tokens": 8, "messages": ASK}
    assert raw(body, **{"x-api-key": "sk-test", "anthropic-version": "2023-06-01",
                        "anthropic-beta": "interleaved-thinking-2025-05-14"}).status_code == 200
    assert raw(body, Authorization="Bearer sk-test").status_code == 200
    assert_anthropic_error(raw(body), 401, "authentication_error")
    with pytest.raises(anthropic.AuthenticationError):
        sdk(lambda c: c.messages.create(**body), api_key="sk-wrong")
    assert sdk(lambda c: c.messages.create(**body), api_key="sk-test").content[0].text == "ok"


def _tool_turns(result_id: str) -> list[dict]:
    return [*ASK, {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                                     "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": result_id, "content": "sun"}]}]


BAD_INPUTS = [
    ("no-max-tokens", {"messages": ASK}),
    ("max-tokens-string", {"max_tokens": "16", "messages": ASK}),
    ("no-messages", {"max_tokens": 16, "messages": []}),
    ("bad-role", {"max_tokens": 16, "messages": [{"role": "system", "content": "hi"}]}),
    ("user-content-empty", {"max_tokens": 16, "messages": [{"role": "user", "content": []}]}),
    ("content-number", {"max_tokens": 16, "messages": [{"role": "user", "content": 5}]}),
    ("unknown-block", {"max_tokens": 16, "messages": [{"role": "user", "content": [{"type": "document"}]}]}),
    ("block-not-object", {"max_tokens": 16, "messages": [{"role": "user", "content": ["hi"]}]}),
    ("tool-use-from-user", {"max_tokens": 16, "messages": [{"role": "user", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]}),
    ("image-from-assistant", {"max_tokens": 16, "messages": [*ASK, {"role": "assistant", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}]}),
    ("text-without-text", {"max_tokens": 16, "messages": [{"role": "user", "content": [{"type": "text"}]}]}),
    ("tool-result-without-tool-use", {"max_tokens": 16, "messages": _tool_turns("toolu_other")}),
    ("tool-result-first", {"max_tokens": 16, "messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}]}]}),
    ("tool-input-not-object", {"max_tokens": 16, "messages": [*ASK, {"role": "assistant", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": "{}"}]}]}),
    ("image-bad-media-type", {"max_tokens": 16, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": PNG}}]}]}),
    ("image-bad-source", {"max_tokens": 16, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "file", "file_id": "f"}}]}]}),
    ("image-not-decodable", {"model": "seeing", "max_tokens": 16, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "bm90IGFuIGltYWdl"}}]}]}),
    ("image-to-text-model", {"max_tokens": 16, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}]}),
    ("temperature-above-1", {"max_tokens": 16, "messages": ASK, "temperature": 1.5}),
    ("stop-sequences-string", {"max_tokens": 16, "messages": ASK, "stop_sequences": "x"}),
    ("system-image", {"max_tokens": 16, "messages": ASK, "system": [{"type": "image", "source": {}}]}),
    ("server-tool", {"max_tokens": 16, "messages": ASK, "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
    ("tool-schema-not-object", {"max_tokens": 16, "messages": ASK, "tools": [{**WEATHER, "input_schema": {"type": "string"}}]}),
    ("tool-bad-name", {"max_tokens": 16, "messages": ASK, "tools": [{**WEATHER, "name": "get weather"}]}),
    ("tool-choice-unknown-tool", {"max_tokens": 16, "messages": ASK, "tools": [WEATHER],
                                  "tool_choice": {"type": "tool", "name": "other"}}),
    ("tool-choice-any-without-tools", {"max_tokens": 16, "messages": ASK, "tool_choice": {"type": "any"}}),
    ("tool-choice-bad-type", {"max_tokens": 16, "messages": ASK, "tool_choice": {"type": "required"}}),
    ("thinking-budget-over-max", {"max_tokens": 2000, "messages": ASK, "thinking": {"type": "enabled", "budget_tokens": 4000}}),
    ("thinking-budget-too-small", {"max_tokens": 4000, "messages": ASK, "thinking": {"type": "enabled", "budget_tokens": 10}}),
    ("stream-not-bool", {"max_tokens": 16, "messages": ASK, "stream": "yes"}),
]


@pytest.mark.parametrize("case, body", BAD_INPUTS, ids=[c for c, _ in BAD_INPUTS])
def test_bad_input_is_a_400_in_anthropics_shape_and_logged(scripted, case, body):
    scripted(["x"])
    response = raw({"model": "plain", **body})
    message = assert_anthropic_error(response, 400, "invalid_request_error")
    row = RequestLog.objects.get()
    assert (row.endpoint, row.status_code, row.outcome) == (MESSAGES_URL, 400, "error")
    assert row.error == message
    if case == "tool-result-without-tool-use":
        assert "toolu_other" in message and "corresponding `tool_use`" in message


def test_bodies_that_are_not_json_objects_and_wrong_methods(scripted):
    scripted(["x"])
    client = Client()
    assert_anthropic_error(client.post(MESSAGES_URL, data="{oops", content_type="application/json"),
                           400, "invalid_request_error")
    assert_anthropic_error(client.post(MESSAGES_URL, data="[1]", content_type="application/json"),
                           400, "invalid_request_error")
    assert_anthropic_error(client.get(MESSAGES_URL), 405, "invalid_request_error")
    assert_anthropic_error(raw({"messages": ASK}, path=f"{MESSAGES_URL}/count_tokens"), 400, "invalid_request_error")
    assert RequestLog.objects.count() == 4


def test_a_failure_mid_stream_is_an_error_event_without_message_stop(scripted, monkeypatch):
    scripted(["Hel", "lo"])
    from inference.api.anthropic import messages

    def broken(self, event):
        raise RuntimeError("encoder bug")
        yield  # pragma: no cover

    monkeypatch.setattr(messages.MessageCall, "event", broken)
    events = raw_stream({"model": "plain", "max_tokens": 16, "messages": ASK})
    assert events[-1][0] == "error" and "message_stop" not in [n for n, _ in events]
    assert_schema(events[-1][1], "anthropic/ErrorResponse")
    assert events[-1][1]["error"]["type"] == "api_error"
    assert RequestLog.objects.get().status_code == 500


def metric(name: str, **labels) -> float:
    text = Client().get("/metrics").content.decode()
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))


def test_messages_are_metered_like_chat(scripted):
    scripted(["Hel", "lo"])
    ok = {"endpoint": MESSAGES_URL, "status": "200", "outcome": "ok"}
    before = (metric("mlx_server_requests_total", **ok), metric("mlx_server_completion_tokens_total", model="plain"),
              metric("mlx_server_prompt_tokens_total", model="plain"))
    create(model="plain")
    sdk(lambda c: c.messages.count_tokens(model="plain", messages=ASK))
    assert metric("mlx_server_requests_total", **ok) == before[0] + 1
    assert metric("mlx_server_completion_tokens_total", model="plain") == before[1] + 2
    # the count generated nothing and prefilled nothing: only the message's prompt is counted
    assert metric("mlx_server_prompt_tokens_total", model="plain") == before[2] + RequestLog.objects.get(endpoint=MESSAGES_URL).prompt_tokens
    assert metric("mlx_server_requests_total", endpoint=f"{MESSAGES_URL}/count_tokens", status="200") >= 1


THINKING = ["<think>", "The user ", "asks.", "</think>", "Hel", "lo"]


def test_a_reasoning_models_thinking_is_a_thinking_block(models_yaml, serve):
    models_yaml("thinker", reasoning="think_tags", tool_format="qwen_tool_call", context_length=8192)
    engine = serve(THINKING)
    body = raw({"model": "thinker", "max_tokens": 32, "messages": ASK}).json()
    assert_schema(body, "anthropic/Message")
    assert body["content"] == [{"type": "thinking", "thinking": "The user asks.", "signature": ""},
                               {"type": "text", "text": "Hello"}]
    assert body["usage"]["output_tokens"] == len(THINKING)

    events = raw_stream({"model": "thinker", "max_tokens": 32, "messages": ASK})
    for _, data in events:
        assert_schema(data, "anthropic/MessageStreamEvent")
    starts = [d["content_block"]["type"] for n, d in events if n == "content_block_start"]
    assert starts == ["thinking", "text"]
    thinking = "".join(d["delta"]["thinking"] for n, d in events
                       if n == "content_block_delta" and d["delta"]["type"] == "thinking_delta")
    assert thinking == "The user asks."

    async def call(client):
        async with client.messages.stream(model="thinker", max_tokens=32, messages=ASK) as stream:
            return await stream.get_final_message()

    final = sdk(call)
    assert (final.content[0].type, final.content[0].thinking, final.content[1].text) == ("thinking", "The user asks.", "Hello")
    # `thinking` turns the template's thinking on or off; without it, the model's default
    create(model="thinker", thinking={"type": "disabled"})
    create(model="thinker", thinking={"type": "enabled", "budget_tokens": 1024}, max_tokens=2048)
    assert [r.template_kwargs for r in engine.requests[-2:]] == [{"enable_thinking": False}, {"enable_thinking": True}]
    assert engine.requests[0].template_kwargs == {}


def test_unknown_urls_below_messages_are_anthropic_404s(scripted):
    assert_anthropic_error(Client().post(f"{MESSAGES_URL}/batches", data="{}", content_type="application/json"),
                           404, "not_found_error")
    assert Client().get("/v1/no/such/thing").json()["error"]["code"] == "unknown_url"  # OpenAI's elsewhere


def test_a_body_over_the_limit_is_request_too_large(scripted, settings):
    scripted(["x"])
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = raw({"model": "plain", "max_tokens": 8, "messages": [{"role": "user", "content": "x" * 2000}]})
    assert_anthropic_error(response, 413, "request_too_large")
    assert RequestLog.objects.get().status_code == 413


def test_a_full_queue_is_the_sdks_overloaded_error_and_logged_529(models_yaml, serve):
    models_yaml("queued", context_length=8192)
    world = ScriptedWorld(["t"] * 100, delay=0.1)
    engine = Engine(materialize=lambda s: Path(s.source.location), loader=world.load, default_max_tokens=2000,
                    max_queue=1)
    serve(engine)
    spec = get_registry().resolve("queued")
    running, waiting = (Job(spec, ChatRequest(messages=[{"role": "user", "content": "x"}]), emit=lambda e: None)
                        for _ in range(2))
    engine.submit(running)
    while engine.status()["state"] != "generating":
        time.sleep(0.01)
    engine.submit(waiting)
    try:
        with pytest.raises(anthropic.OverloadedError) as overloaded:
            create(model="queued")
        assert overloaded.value.status_code == 529 and int(overloaded.value.response.headers["Retry-After"]) >= 1
        assert overloaded.value.body["error"]["type"] == "overloaded_error"
        row = RequestLog.objects.get()
        assert (row.status_code, row.error_code) == (529, "queue_full")
    finally:
        running.cancelled.set()
        waiting.cancelled.set()


def test_max_tokens_is_a_ceiling_cut_to_the_context(models_yaml, serve):
    models_yaml("small", context_length=40)
    engine = serve(["Hel", "lo"])
    body = raw({"model": "small", "max_tokens": 32000, "messages": ASK}).json()  # Claude Code's, whatever the model
    assert body["content"] == [{"type": "text", "text": "Hello"}] and engine.requests[-1].params.fit_max_tokens
    too_long = [{"role": "user", "content": "x" * 50}]
    assert_anthropic_error(raw({"model": "small", "max_tokens": 8, "messages": too_long}), 400, "invalid_request_error")
    chat = Client().post("/v1/chat/completions", content_type="application/json",
                         data=json.dumps({"model": "small", "max_tokens": 32000, "messages": ASK}))
    assert chat.status_code == 400 and chat.json()["error"]["code"] == "context_length_exceeded"

"""End to end: Anthropic's Messages API through the real `anthropic` SDK, Daphne, the engine
and MLX, on the real SmolLM2 import (registered once per tool format) and the random-weight
Gemma 3 vision fixture: plain and image messages, the SDK's stream helper, tool_use ->
tool_result round trips in both tool formats, tool_choice, count_tokens, errors as the SDK's
exceptions and the key, a prefix-cache hit across two Claude-Code-shaped turns, and a bounded
schemathesis run (4xx in Anthropic's shape, never 5xx, each logged)."""
from __future__ import annotations

import base64
import io
import json

import anthropic
import pytest
import requests

from testkit.live import LiveServer
from tests.helpers import assert_anthropic_error, assert_schema, schemathesis_run, sse_events

pytestmark = pytest.mark.e2e

KEY = "sk-messages-test"
MAIN, QWEN, GEMMA, VISION = "smollm2", "smollm2-qwen", "smollm2-gemma", "tiny-gemma3-vision"
ASK = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
WEATHER = {"name": "get_weather", "description": "Current weather in a city",
           "input_schema": {"type": "object", "properties": {
               "city": {"type": "string", "minLength": 1, "maxLength": 20}}, "required": ["city"]}}
ASK_WEATHER = [{"role": "user", "content": "What is the weather in Paris right now?"}]
# Claude Code's system prompt, as it sends it: the billing line (its cch= changes every request),
# then its identity and instructions, with cache_control breakpoints.
CLAUDE_CODE_INSTRUCTIONS = (
    "You are an interactive CLI tool that helps users with software engineering tasks. Use the "
    "instructions below and the tools available to you to assist the user. Be concise, direct "
    "and to the point. When you run a non-trivial command, explain what it does and why. "
) * 4


def claude_code_body(cch: str, messages: list[dict]) -> dict:
    return {
        "model": MAIN, "max_tokens": 24, "temperature": 0, "stream": True,
        "system": [
            {"type": "text", "text": f"x-anthropic-billing-header: cc_version=2.1.117.48f; cc_entrypoint=cli; cch={cch};"},
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
             "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": CLAUDE_CODE_INSTRUCTIONS, "cache_control": {"type": "ephemeral"}},
        ],
        "tools": [{"name": "Bash", "description": "Executes a given bash command.",
                   "input_schema": {"type": "object", "properties": {"command": {"type": "string"}},
                                    "required": ["command"], "additionalProperties": False,
                                    "$schema": "http://json-schema.org/draft-07/schema#"}}],
        "metadata": {"user_id": "user_0123_account__session_4567"},
        "messages": messages,
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory, smollm2_dir, tiny_gemma3_dir):
    root = tmp_path_factory.mktemp("messages")
    smollm2 = {"source": {"path": str(smollm2_dir)}, "context_length": 2048}
    models = {"default": MAIN, "models": [
        {"id": MAIN, **smollm2},
        {"id": QWEN, **smollm2, "tool_format": "qwen_tool_call"},
        {"id": GEMMA, **smollm2, "tool_format": "gemma_tool_code"},
        {"id": VISION, "source": {"path": str(tiny_gemma3_dir)}, "backend": "vision",
         "tool_format": "gemma_tool_code", "capabilities": ["chat", "vision"], "fixture": True},
    ]}
    with LiveServer(root, models, env={"MLX_SERVER_API_KEY": KEY}).start() as server:
        yield server


@pytest.fixture(scope="module")
def client(server):
    return server.anthropic(api_key=KEY, timeout=300)


def post(server, body: dict, path: str = "/v1/messages") -> requests.Response:
    return requests.post(f"{server.url}{path}", json=body, headers={"x-api-key": KEY,
                                                                    "anthropic-version": "2023-06-01"}, timeout=300)


def greedy(**kw):
    return {"extra_body": {"temperature": 0}, **kw}


def png() -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_plain_message(server, client):
    message = client.messages.create(model=MAIN, max_tokens=16, messages=ASK, **greedy())
    assert "Paris" in message.content[0].text
    assert message.stop_reason in ("end_turn", "max_tokens") and message.usage.output_tokens > 0
    body = post(server, {"model": MAIN, "max_tokens": 16, "temperature": 0, "messages": ASK}).json()
    assert_schema(body, "anthropic/Message")
    assert body["content"][0]["text"] == message.content[0].text  # greedy: the same answer
    row = server.log_rows()[-1]
    assert (row["endpoint"], row["status_code"], row["request_id"]) == ("/v1/messages", 200, body["id"])


def test_image_message(server, client):
    message = client.messages.create(model=VISION, max_tokens=8, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png()}},
        {"type": "text", "text": "What color is this?"}]}])
    assert message.stop_reason in ("end_turn", "max_tokens") and message.usage.input_tokens > 0
    row = server.log_rows()[-1]
    assert row["image_count"] == 1 and "base64 chars omitted" in row["request_body"]


def test_stream_helper_and_event_shapes(server, client):
    with client.messages.stream(model=MAIN, max_tokens=16, messages=ASK, **greedy()) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts) == final.content[0].text and "Paris" in final.content[0].text
    response = post(server, {"model": MAIN, "max_tokens": 16, "temperature": 0, "messages": ASK, "stream": True})
    events = sse_events(response.text)
    for _, data in events:
        assert_schema(data, "anthropic/MessageStreamEvent")
    assert [n for n, _ in events][:2] == ["message_start", "ping"] and events[-1][0] == "message_stop"


@pytest.mark.parametrize("model", [QWEN, GEMMA])
def test_tool_use_then_tool_result_round_trip(client, model):
    forced = client.messages.create(model=model, max_tokens=64, messages=ASK_WEATHER, tools=[WEATHER],
                                    tool_choice={"type": "tool", "name": "get_weather"}, **greedy())
    assert forced.stop_reason == "tool_use"
    call = [b for b in forced.content if b.type == "tool_use"][0]
    assert call.name == "get_weather" and isinstance(call.input["city"], str) and call.input["city"]
    answer = client.messages.create(model=model, max_tokens=24, tools=[WEATHER], messages=[
        *ASK_WEATHER,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in forced.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny"}]},
    ], tool_choice={"type": "none"}, **greedy())
    assert answer.stop_reason in ("end_turn", "max_tokens") and answer.content[0].text


@pytest.mark.parametrize("model", [QWEN, GEMMA])
def test_streamed_forced_call_has_input_json_deltas(server, client, model):
    with client.messages.stream(model=model, max_tokens=64, messages=ASK_WEATHER, tools=[WEATHER],
                                tool_choice={"type": "any"}, **greedy()) as stream:
        events = list(stream)
        final = stream.get_final_message()
    partial: dict[int, str] = {}
    for e in events:
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta":
            partial[e.index] = partial.get(e.index, "") + e.delta.partial_json
    calls = {i: b.input for i, b in enumerate(final.content) if b.type == "tool_use"}
    assert calls and {i: json.loads(text) for i, text in partial.items()} == calls
    assert final.stop_reason == "tool_use"


def test_tool_choice_none_answers_in_text(client):
    message = client.messages.create(model=QWEN, max_tokens=16, messages=ASK_WEATHER, tools=[WEATHER],
                                     tool_choice={"type": "none"}, **greedy())
    assert all(b.type == "text" for b in message.content) and message.stop_reason != "tool_use"


def test_count_tokens_matches_the_message_usage(server, client):
    counted = client.messages.count_tokens(model=QWEN, messages=ASK_WEATHER, tools=[WEATHER], system="Be brief.")
    message = client.messages.create(model=QWEN, max_tokens=4, messages=ASK_WEATHER, tools=[WEATHER],
                                     system="Be brief.", **greedy())
    assert counted.input_tokens == message.usage.input_tokens + message.usage.cache_read_input_tokens > 10
    assert_schema(post(server, {"model": QWEN, "messages": ASK}, "/v1/messages/count_tokens").json(),
                  "anthropic/CountTokensResponse")


def test_errors_are_the_sdks_exceptions(server, client):
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="no-such-model", max_tokens=8, messages=ASK)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model=MAIN, max_tokens=8, messages=[*ASK, {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_x", "content": "?"}]}])
    with pytest.raises(anthropic.AuthenticationError):
        server.anthropic(api_key="sk-wrong").messages.create(model=MAIN, max_tokens=8, messages=ASK)
    assert_anthropic_error(post(server, {"model": MAIN, "messages": ASK}), 400, "invalid_request_error")
    too_long = [{"role": "user", "content": "word " * 3000}]
    message = assert_anthropic_error(post(server, {"model": MAIN, "max_tokens": 8, "messages": too_long}),
                                     400, "invalid_request_error")
    assert "context length" in message


def test_max_tokens_past_the_context_is_a_ceiling(client):
    """Claude Code asks for 32,000 tokens whatever the model: the answer is cut to the room left."""
    with client.messages.stream(model=MAIN, max_tokens=32000, messages=ASK, **greedy()) as stream:
        message = stream.get_final_message()
    assert "Paris" in message.content[0].text and message.stop_reason == "end_turn"


def test_prefix_cache_hits_across_claude_code_turns(server):
    """Two turns of one conversation, each with another cch= in its billing line: the second
    reuses the first's prompt (and answer) from the cache."""
    first = sse_events(post(server, claude_code_body("71fea", [{"role": "user", "content": "List the files."}])).text)
    start = first[0][1]["message"]["usage"]
    reply = "".join(d["delta"].get("text", "") for n, d in first if n == "content_block_delta")
    turn_one = start["input_tokens"] + start["cache_read_input_tokens"]
    second = sse_events(post(server, claude_code_body("0aaa9", [
        {"role": "user", "content": "List the files."},
        {"role": "assistant", "content": [{"type": "text", "text": reply or "ok"}]},
        {"role": "user", "content": "Now count them."},
    ])).text)
    usage = second[-2][1]["usage"]
    assert usage["cache_read_input_tokens"] >= turn_one - 8, (start, usage)  # all but the turn's end markers
    row = server.log_rows()[-1]
    assert row["cached_tokens"] == usage["cache_read_input_tokens"] and row["endpoint"] == "/v1/messages"


# --- schemathesis ------------------------------------------------------------------------


def test_schemathesis_finds_no_server_errors_and_errors_are_anthropics(server, tmp_path):
    """Positive cases name the real model with max_tokens capped (they generate, briefly);
    negative ones name no model, so what slips past validation is a 404, not a generation."""
    schema = requests.get(f"{server.url}/v1/openapi.json", headers={"x-api-key": KEY}, timeout=30).json()
    before = len(server.log_rows())
    components = schema["components"]["schemas"]
    components["MessageCreateParams"]["properties"]["max_tokens"]["maximum"] = 8
    for name in ("MessageCreateParams", "MessageCountTokensParams"):
        components[name]["properties"]["model"] = {"type": "string", "enum": [MAIN]}
    only = ("--include-path-regex", "^/v1/messages")
    positive = schemathesis_run(server, schema, tmp_path, "positive", 20, key=KEY, extra=only)
    for name in ("MessageCreateParams", "MessageCountTokensParams"):
        components[name]["properties"]["model"] = {"type": "string", "enum": ["no-such-model"]}
    negative = schemathesis_run(server, schema, tmp_path, "negative", 30, key=KEY, extra=only)
    for run in (positive, negative):
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    rows = server.log_rows()[before:]
    assert len(rows) > 40 and all(r["endpoint"].startswith("/v1/messages") for r in rows)
    assert not [r for r in rows if r["status_code"] >= 500]
    refused = [r for r in rows if 400 <= r["status_code"] < 500]
    assert refused
    for row in refused[:50]:
        body = json.loads(row["response_body"])
        assert_schema(body, "anthropic/ErrorResponse")

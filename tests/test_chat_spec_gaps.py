"""The last gaps against OpenAI's chat spec: system_fingerprint is a string (JSON and every
chunk), and the deprecated functions / function_call work as the tools / tool_choice they became."""
import json

import pytest

from tests.helpers import assert_openai_error, post, sse_frames


ASK = [{"role": "user", "content": "Weather in Oslo?"}]
WEATHER = {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
CALL = ["<tool_call>\n", '{"name": "get_weather", "arguments": {"city": "Oslo"}}', "\n</tool_call>"]


@pytest.fixture
def qwen(models_yaml, serve):
    models_yaml("qwen-like", tool_format="qwen_tool_call")
    return serve(CALL)


@pytest.mark.django_db(transaction=True)
def test_system_fingerprint_is_a_string_everywhere(client, qwen):
    body = post(client, {"model": "qwen-like", "messages": ASK}).json()
    fingerprint = body["system_fingerprint"]
    assert isinstance(fingerprint, str) and fingerprint.startswith("fp_")
    frames = sse_frames({"model": "qwen-like", "messages": ASK, "stream": True})
    chunks = [json.loads(f) for f in frames[:-1]]
    assert {c["system_fingerprint"] for c in chunks} == {fingerprint}


@pytest.mark.django_db
def test_functions_are_tools(client, qwen):
    body = post(client, {"model": "qwen-like", "messages": ASK, "functions": [WEATHER]}).json()
    assert qwen.requests[-1].tools == [{"type": "function", "function": WEATHER}]
    (call,) = body["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather" and body["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.django_db
def test_a_named_function_call_forces_that_tool(client, qwen):
    post(client, {"model": "qwen-like", "messages": ASK, "functions": [WEATHER],
                  "function_call": {"name": "get_weather"}})
    assert qwen.requests[-1].params.grammar is not None  # the forced call's grammar
    post(client, {"model": "qwen-like", "messages": ASK, "functions": [WEATHER], "function_call": "none"})
    assert qwen.requests[-1].tools is None  # none hides them, as tool_choice none


@pytest.mark.django_db
@pytest.mark.parametrize("body, param", [
    ({"functions": [WEATHER], "tools": [{"type": "function", "function": WEATHER}]}, "functions"),
    ({"functions": [WEATHER], "function_call": {"name": "nope"}}, "tool_choice"),
    ({"functions": [{"parameters": {}}]}, None),
    ({"function_call": "sometimes", "functions": [WEATHER]}, "tool_choice"),
])
def test_bad_legacy_functions_are_400s(client, qwen, body, param):
    assert_openai_error(post(client, {"model": "qwen-like", "messages": ASK, **body}), 400, param=param)

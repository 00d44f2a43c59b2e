"""Tool calls through the API layer, on a scripted backend that answers exact text.

The parsing itself is covered in tests/test_tools_*.py; here: the OpenAI response shapes
(JSON and SSE), finish_reason, tool_choice none, and the tool-call log rows.
"""
import json

import pytest

from inference.models import RequestLog, ToolCallLog
from tests.helpers import post, sse_frames

pytestmark = pytest.mark.django_db

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
QWEN_ANSWER = ["Let me check.", "\n<tool", "_call>\n{\"name\": \"get_weather\", ",
               "\"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"]
GEMMA_ANSWER = ["```tool", "_code\nget_weather(city=", "\"Oslo\")\n```"]


ASK = [{"role": "user", "content": "Weather in Paris?"}]


@pytest.fixture
def scripted(models_yaml, serve):
    models_yaml("qwen-like", tool_format="qwen_tool_call")
    models_yaml("gemma-like", tool_format="gemma_tool_code")
    return serve


def post_weather(client, **body):
    return post(client, {"messages": ASK, **body})


def stream(**body) -> list[dict]:
    """The streamed answer's chunks, parsed (after checking it ends in [DONE])."""
    frames = sse_frames({"messages": [{"role": "user", "content": "Weather?"}], "stream": True, **body})
    assert frames[-1] == "[DONE]"
    return [json.loads(f) for f in frames[:-1]]


def test_qwen_call_in_json_response_and_log(client, scripted):
    scripted(QWEN_ANSWER)
    body = post_weather(client, model="qwen-like", tools=TOOLS).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check."
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    row = RequestLog.objects.get()
    assert row.finish_reason == "tool_calls"
    logged = ToolCallLog.objects.get(request=row)
    assert (logged.name, logged.call_id, logged.parsed_ok) == ("get_weather", call["id"], True)
    assert json.loads(logged.arguments) == {"city": "Paris"}


@pytest.mark.django_db(transaction=True)
def test_gemma_call_streamed_as_tool_call_deltas(scripted):
    scripted(GEMMA_ANSWER)
    events = stream(model="gemma-like", tools=TOOLS)
    deltas = [e["choices"][0]["delta"] for e in events if e["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    content = "".join(d.get("content") or "" for d in deltas[1:])
    assert "tool_code" not in content and "```" not in content
    calls = [c for d in deltas for c in d.get("tool_calls", [])]
    assert calls[0]["id"].startswith("call_") and calls[0]["function"]["name"] == "get_weather"
    arguments = "".join(c["function"]["arguments"] for c in calls)
    assert json.loads(arguments) == {"city": "Oslo"}
    assert {c["index"] for c in calls} == {0}
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert ToolCallLog.objects.get().name == "get_weather"


def test_unparsable_call_comes_back_as_content_and_is_logged_as_failed(client, scripted):
    broken = ["<tool_call>\n{\"name\": get_weather(}\n</tool_call>"]
    scripted(broken)
    body = post_weather(client, model="qwen-like", tools=TOOLS).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop" and "tool_calls" not in choice["message"]
    assert choice["message"]["content"] == broken[0]
    failed = ToolCallLog.objects.get()
    assert failed.parsed_ok is False and failed.arguments == broken[0]


def test_without_tools_the_text_is_plain_content(client, scripted):
    scripted(QWEN_ANSWER)
    body = post_weather(client, model="qwen-like").json()
    assert body["choices"][0]["message"]["content"] == "".join(QWEN_ANSWER)
    assert body["choices"][0]["finish_reason"] == "stop"
    assert not ToolCallLog.objects.exists()


def test_tool_choice_none_leaves_calls_as_text(client, scripted):
    scripted(QWEN_ANSWER)
    body = post_weather(client, model="qwen-like", tools=TOOLS, tool_choice="none").json()
    assert "tool_calls" not in body["choices"][0]["message"]
    assert body["choices"][0]["message"]["content"] == "".join(QWEN_ANSWER)
    assert body["choices"][0]["finish_reason"] == "stop"
    assert not ToolCallLog.objects.exists()

"""Tool calls at the edges: a call cut by max_tokens is a call as far as it got (streamed and
whole alike, finish_reason length, no markup left in content), and a named tool_choice is
exactly one call of that function."""
import json

import pytest

from inference.api.chat import build_chat_request
from inference.tools import ToolCallDelta, get_tool_format
from tests.helpers import post, sse_frames

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}]
QWEN_CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
CUT = [
    ("qwen_tool_call", 'Sure.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Pa', "Sure.",
     [("get_weather", '{"city": "Pa')]),
    ("gemma_tool_code", 'Sure.\n```tool_code\nget_weather(city="Pa', "Sure.", [("get_weather", '{"city": "Pa"}')]),
    ("qwen_tool_call", QWEN_CALL + '\n<tool_call>\n{"name": "get_wea', "", [("get_weather", '{"city": "Paris"}')]),
    ("qwen_tool_call", QWEN_CALL[:-4], "", [("get_weather", '{"city": "Paris"}')]),
    ("gemma_tool_code", '```tool_code\nget_weather(city="Paris")\n``', "", [("get_weather", '{"city": "Paris"}')]),
    ("qwen_tool_call", "Hi <tool_call>\n{", "Hi ", []),  # no call: its whitespace stays
]


def parsed(fmt, text, size, cut=True):
    parser = get_tool_format(fmt).stream_parser(TOOLS)
    events = [e for i in range(0, len(text), size) for e in parser.feed(text[i:i + size])]
    events += parser.finish(cut=cut)
    return parser.result(), events


@pytest.mark.parametrize("fmt, text, content, calls", CUT)
@pytest.mark.parametrize("size", [1, 7, 10_000])
def test_a_cut_call_is_a_call_as_far_as_it_got(fmt, text, content, calls, size):
    result, events = parsed(fmt, text, size)
    assert result.content == content
    assert [(c.name, c.arguments) for c in result.calls] == calls
    streamed = {}
    for event in events:
        if isinstance(event, ToolCallDelta):
            streamed[event.index] = streamed.get(event.index, "") + event.arguments
    assert [streamed[i] for i in sorted(streamed)] == [a for _, a in calls]


def test_an_unclosed_block_that_was_not_cut_stays_content():
    text = 'Sure.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Pa'
    result, _ = parsed("qwen_tool_call", text, 3, cut=False)
    assert result.content == text and result.calls == []


@pytest.fixture
def qwen(models_yaml, serve):
    models_yaml("qwen-like", tool_format="qwen_tool_call")
    return serve(["Sure.\n", "<tool_call>\n", '{"name": "get_weather", ', '"arguments": {"city": ', '"Par', 'is"}}'])


ASK = [{"role": "user", "content": "Weather in Paris?"}]


@pytest.mark.django_db(transaction=True)
def test_streamed_and_whole_answers_cut_by_max_tokens_agree(client, qwen):
    body = {"model": "qwen-like", "messages": ASK, "tools": TOOLS, "max_tokens": 5}
    whole = post(client, body).json()["choices"][0]
    assert whole["finish_reason"] == "length"
    assert whole["message"]["content"] == "Sure."
    (call,) = whole["message"]["tool_calls"]
    assert (call["function"]["name"], call["function"]["arguments"]) == ("get_weather", '{"city": "Par')
    chunks = [json.loads(f) for f in sse_frames({**body, "stream": True})[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == "Sure."
    streamed = [t for d in deltas for t in d.get("tool_calls") or []]
    assert streamed[0]["function"]["name"] == "get_weather"
    assert "".join(t["function"]["arguments"] for t in streamed) == '{"city": "Par'
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "length"


def test_a_named_tool_choice_is_one_call_even_with_parallel_calls():
    fmt = get_tool_format("gemma_tool_code")
    named = {"type": "function", "function": {"name": "get_weather"}}
    one = build_chat_request({"messages": ASK, "tools": TOOLS, "tool_choice": named}, tool_format=fmt)
    alone = build_chat_request({"messages": ASK, "tools": TOOLS, "tool_choice": named,
                                "parallel_tool_calls": False}, tool_format=fmt)
    many = build_chat_request({"messages": ASK, "tools": TOOLS, "tool_choice": "required"}, tool_format=fmt)
    assert one.params.grammar == alone.params.grammar != many.params.grammar

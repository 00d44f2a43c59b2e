"""Gemma 3 ```tool_code``` calls: whole-output parsing, prompt rendering, round trip.

The cases are in tests/tool_cases.py, shared with test_tools_streaming, which replays each one split at
every boundary.
"""
from __future__ import annotations

import json
import re

import pytest

from inference.tools import get_tool_format
from inference.tools.gemma_tool_code import PREAMBLE, python_signature
from tests.tool_cases import GEMMA_CASES as CASES
from tests.tool_cases import GEMMA_TOOLS as TOOLS
from tests.tool_cases import SAME

FMT = get_tool_format("gemma_tool_code")


def calls_of(parsed):
    return [(c.name, json.loads(c.arguments)) for c in parsed.calls]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_parse(case):
    _, text, content, calls, failures, tools = case
    content = text if content == SAME else content
    parsed = FMT.parse(text, tools)
    assert parsed.content == content
    assert calls_of(parsed) == calls
    assert len(parsed.failures) == failures
    for failure in parsed.failures:
        assert failure in parsed.content  # never drop text
    for call in parsed.calls:
        assert re.fullmatch(r"call_[0-9a-f]{24}", call.id)
        assert isinstance(json.loads(call.arguments), dict)


def test_ids_are_unique():
    parsed = FMT.parse("```tool_code\n" + "\n".join(f"search(query='{i}')" for i in range(50)) + "\n```")
    assert len({c.id for c in parsed.calls}) == 50


def test_prompt_describes_tools_in_first_user_turn():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}]
    out = FMT.render_messages(messages, TOOLS)
    assert out[0] == {"role": "system", "content": "Be brief."}
    assert out[1]["role"] == "user"
    user = out[1]["content"]
    assert user.endswith("Weather in Paris?")
    assert "```tool_code" in user and "def get_weather(city: str, unit: str = None):" in user
    assert "def search(query: str, filters: dict = None, limit: int = None):" in user
    assert 'One of: "c", "f".' in user
    assert FMT.template_tools(TOOLS) is None
    assert FMT.render_messages(messages, None) == messages  # no tools: nothing added


def test_signature_without_parameters():
    assert python_signature({"name": "now", "description": "The time."}) == 'def now():\n    """The time.\n    """'
    assert PREAMBLE.count("{definitions}") == 1


def test_round_trip_and_alternation():
    call = {"id": "call_1", "type": "function",
            "function": {"name": "search",
                         "arguments": json.dumps({"query": 'say "hi"', "filters": {"n": [1, None, True]}})}}
    call2 = {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "Find it."},
        {"role": "assistant", "content": None, "tool_calls": [call, call2]},
        {"role": "tool", "tool_call_id": "call_1", "content": "result one"},
        {"role": "tool", "tool_call_id": "call_2", "name": "get_weather", "content": "sunny"},
        {"role": "assistant", "content": "Found it."},
        {"role": "user", "content": "Thanks."},
    ]
    out = FMT.render_messages(messages, TOOLS)
    roles = [m["role"] for m in out]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]  # Gemma's template insists
    assistant = out[2]["content"]
    parsed = FMT.parse(assistant, TOOLS)
    assert parsed.content == "" and not parsed.failures
    assert [(c.name, json.loads(c.arguments)) for c in parsed.calls] == [
        ("search", {"query": 'say "hi"', "filters": {"n": [1, None, True]}}), ("get_weather", {"city": "Rome"})]
    assert out[3]["content"] == "```tool_output\nresult one\n```\n\n```tool_output\nsunny\n```"


def test_vision_content_parts_get_the_preamble():
    parts = [{"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "What?"}]
    messages = [{"role": "user", "content": parts}]
    out = FMT.render_messages(messages, TOOLS)
    parts = out[0]["content"]
    assert parts[0]["type"] == "text" and "```tool_code" in parts[0]["text"]
    assert parts[1:] == messages[0]["content"]

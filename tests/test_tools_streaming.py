"""Streaming parsers agree with whole-output parsing wherever the chunk boundaries fall, and
never leak an opener or closer into content when the call parsed.

Every whole-output case of the Gemma and Qwen tests is replayed split at every position
(all 2-way splits), one character at a time, and in random token-sized chunks.
"""
from __future__ import annotations

import json
import random

import pytest

from inference.tools import (
    TOOL_FORMATS, ContentDelta, ToolCallDelta, ToolFormat, get_tool_format,
)
from tests.tool_cases import GEMMA_CASES, QWEN_CASES

ALL = [("gemma_tool_code", c) for c in GEMMA_CASES] + [("qwen_tool_call", c) for c in QWEN_CASES]
IDS = [f"{fmt}-{case[0]}" for fmt, case in ALL]


def replay(fmt: ToolFormat, chunks: list[str], tools):
    """Feed chunks; return (content text, {index: [name, id, arguments]}, result, events)."""
    parser = fmt.stream_parser(tools)
    events = []
    for chunk in chunks:
        events += parser.feed(chunk)
    events += parser.finish()
    content = ""
    calls: dict[int, list] = {}
    for event in events:
        if isinstance(event, ContentDelta):
            assert event.text, "empty content deltas are noise"
            content += event.text
        else:
            assert isinstance(event, ToolCallDelta)
            if event.index not in calls:
                assert event.id and event.name, "a call's first delta carries its id and name"
                assert event.index == len(calls), "indexes count up from 0"
                calls[event.index] = [event.name, event.id, event.arguments]
            else:
                assert event.id is None and event.name is None
                calls[event.index][2] += event.arguments
    return content, calls, parser.result(), events


def check(fmt: ToolFormat, text: str, chunks: list[str], tools) -> None:
    assert "".join(chunks) == text
    whole = fmt.parse(text, tools)
    content, calls, result, _ = replay(fmt, chunks, tools)
    # (a) the content stream is the parsed content, with no tag text when the calls parsed
    assert content == whole.content
    if not whole.failures:
        assert fmt.opener not in content
        if fmt.closer != "```":  # Gemma's closer is a plain fence, legitimate in prose
            assert fmt.closer not in content
    # (b) per index: the name and the concatenated argument fragments are the call's
    assert [(name, json.loads(args)) for name, _, args in calls.values()] == [
        (c.name, json.loads(c.arguments)) for c in whole.calls]
    assert [c.arguments for c in result.calls] == [args for _, _, args in calls.values()]
    assert [c.id for c in result.calls] == [call_id for _, call_id, _ in calls.values()]
    # (c) the stream's result is the whole-output parse, ids aside
    assert result.content == whole.content and result.failures == whole.failures
    assert [(c.name, c.arguments) for c in result.calls] == [(c.name, c.arguments) for c in whole.calls]


@pytest.mark.parametrize("fmt_name,case", ALL, ids=IDS)
def test_every_two_way_split(fmt_name, case):
    fmt = get_tool_format(fmt_name)
    _, text, _, _, _, tools = case
    for i in range(len(text) + 1):
        check(fmt, text, [text[:i], text[i:]], tools)


@pytest.mark.parametrize("fmt_name,case", ALL, ids=IDS)
def test_char_by_char_and_random_chunks(fmt_name, case):
    fmt = get_tool_format(fmt_name)
    _, text, _, _, _, tools = case
    check(fmt, text, list(text), tools)
    rng = random.Random(hash(text) & 0xFFFF)
    for _ in range(30):
        chunks, i = [], 0
        while i < len(text):
            n = rng.choice([1, 1, 2, 3, 4, 5, 8, 13])
            chunks.append(text[i:i + n])
            i += n
        check(fmt, text, chunks, tools)


def test_content_before_a_call_is_not_delayed():
    parser = get_tool_format("qwen_tool_call").stream_parser()
    assert parser.feed("Let me look") == [ContentDelta("Let me look")]
    assert parser.feed(" that up. <tool") == [ContentDelta(" that up.")]  # " <tool" may open a call
    assert parser.feed("_call>\n{\"name\": \"f\",") == []  # inside the block: wait for it to close
    events = parser.feed(' "arguments": {"a": 1}}\n</tool_call>')
    assert [type(e) for e in events] == [ToolCallDelta, ToolCallDelta]
    assert events[0].name == "f" and events[0].arguments == "" and events[1].arguments == '{"a": 1}'
    assert parser.finish() == []
    assert parser.result().content == "Let me look that up."


def test_a_near_miss_is_released_as_soon_as_it_differs():
    parser = get_tool_format("qwen_tool_call").stream_parser()
    assert parser.feed("a <tool") == [ContentDelta("a")]
    assert parser.feed("box>") == [ContentDelta(" <toolbox>")]
    parser = get_tool_format("gemma_tool_code").stream_parser()
    assert parser.feed("```") == []
    assert parser.feed("python\n") == [ContentDelta("```python")]


def test_unclosed_block_is_content_at_finish():
    parser = get_tool_format("qwen_tool_call").stream_parser()
    assert parser.feed('<tool_call>{"name": "f"') == []
    assert parser.finish() == [ContentDelta('<tool_call>{"name": "f"')]
    assert parser.result().failures == ['<tool_call>{"name": "f"']


def test_trailing_whitespace_kept_without_calls():
    parser = get_tool_format("gemma_tool_code").stream_parser()
    assert parser.feed("Hello\n\n") == [ContentDelta("Hello")]
    assert parser.finish() == [ContentDelta("\n\n")]
    assert parser.result().content == "Hello\n\n"


def test_none_format_passes_everything_through():
    fmt = get_tool_format("none")
    text = 'x <tool_call>{"name": "f"}</tool_call> ```tool_code\nf()\n```'
    assert fmt.parse(text).content == text and not fmt.parse(text).calls
    parser = fmt.stream_parser()
    assert parser.feed("<tool") == [ContentDelta("<tool")]
    assert parser.finish() == [] and parser.result().content == "<tool"
    assert fmt.template_tools([{"type": "function", "function": {"name": "f"}}]) is None


def test_none_format_renders_calls_and_results_as_text():
    fmt = get_tool_format("none")
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ]
    out = fmt.render_messages(messages, None)
    assert [m["role"] for m in out] == ["user", "assistant", "user"]
    assert all(set(m) == {"role", "content"} for m in out)
    assert "f" in out[1]["content"] and '{"a": 1}' in out[1]["content"] and "call_1" in out[1]["content"]
    assert "f" in out[2]["content"] and "call_1" in out[2]["content"] and out[2]["content"].endswith("42")


def test_registry():
    assert set(TOOL_FORMATS) == {"none", "gemma_tool_code", "qwen_tool_call"}
    for name, cls in TOOL_FORMATS.items():
        fmt = get_tool_format(name)
        assert isinstance(fmt, cls) and fmt.name == name
    with pytest.raises(KeyError, match="known"):
        get_tool_format("nope")
    fmt = get_tool_format("qwen_tool_call")
    assert fmt.stream_parser() is not fmt.stream_parser()  # fresh per request


@pytest.mark.parametrize("fmt_name,body", [
    ("qwen_tool_call", '{"name": "f", "arguments": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    ("qwen_tool_call", "{'name': 'f', 'arguments': " + "[" * 100_000 + "}"),
    ("gemma_tool_code", "f(a=" + "[" * 100_000 + "]" * 100_000 + ")"),
])
def test_pathological_nesting_is_a_failure_not_a_crash(fmt_name, body):
    fmt = get_tool_format(fmt_name)
    text = f"{fmt.opener}\n{body}\n{fmt.closer}"
    parsed = fmt.parse(text)
    assert parsed.content == text and parsed.failures == [text] and not parsed.calls

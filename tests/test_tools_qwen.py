"""Hermes/Qwen <tool_call> calls: whole-output parsing with the usual slips, prompt rendering
with and without a template that renders tools (a ChatML template rendered by jinja2).

The cases are in tests/tool_cases.py, shared with test_tools_streaming, which replays each one split at
every boundary.
"""
from __future__ import annotations

import json
import re

import jinja2
import pytest

from inference.tools import get_tool_format, prepare_prompt, template_renders_tools
from inference.tools.qwen_tool_call import loads_tolerant
from tests.tool_cases import QWEN_CASES as CASES
from tests.tool_cases import QWEN_TOOLS as TOOLS
from tests.tool_cases import QWEN_WEATHER as WEATHER
from tests.tool_cases import SAME

FMT = get_tool_format("qwen_tool_call")


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_parse(case):
    _, text, content, calls, failures, tools = case
    content = text if content == SAME else content
    parsed = FMT.parse(text, tools)
    assert parsed.content == content
    assert [(c.name, json.loads(c.arguments)) for c in parsed.calls] == calls
    assert len(parsed.failures) == failures
    for failure in parsed.failures:
        assert failure in parsed.content
    for call in parsed.calls:
        assert re.fullmatch(r"call_[0-9a-f]{24}", call.id)
        assert isinstance(json.loads(call.arguments), dict)
    assert len({c.id for c in parsed.calls}) == len(parsed.calls)


def test_loads_tolerant_never_evaluates():
    with pytest.raises(ValueError):
        loads_tolerant('__import__("os").getcwd()')
    assert loads_tolerant("{'a': (1, 2)}") == {"a": (1, 2)}


# A ChatML template in the Qwen 2.5 manner: it renders `tools` (the Hermes block), assistant
# tool_calls as <tool_call> JSON and `role: tool` messages as <tool_response> in a user turn.
QWEN_TEMPLATE = """
{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}
    {{- '# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n<tools>' }}
    {%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}
    {{- '\\n</tools>\\n\\nFor each function call, return a json object within <tool_call></tool_call> XML tags.<|im_end|>\\n' }}
{%- elif messages[0].role == 'system' %}
    {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if message.role == 'user' or (message.role == 'assistant' and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
    {%- elif message.role == 'assistant' %}
        {{- '<|im_start|>assistant' }}
        {%- if message.content %}{{- '\\n' + message.content }}{%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- set call = tool_call.function if tool_call.function is defined else tool_call %}
            {{- '\\n<tool_call>\\n{"name": "' + call.name + '", "arguments": ' + (call.arguments | tojson) + '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == 'tool' %}
        {%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}
        {{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}
        {%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\\n' }}{%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"""

# SmolLM2-style ChatML without any tools support.
PLAIN_TEMPLATE = """\
{%- for message in messages %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""


def render(template: str, messages, tools=None) -> str:
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda v: json.dumps(v, ensure_ascii=False)  # as transformers does
    return env.from_string(template).render(messages=messages, tools=tools, add_generation_prompt=True)


CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}},
    ]},
    {"role": "tool", "tool_call_id": "call_a", "content": "sunny, 21C"},
    {"role": "tool", "tool_call_id": "call_b", "content": "rain, 14C"},
]


def test_template_renders_tools_detection():
    assert template_renders_tools(QWEN_TEMPLATE)
    assert not template_renders_tools(PLAIN_TEMPLATE)
    assert not template_renders_tools(None)


def test_qwen_template_renders_tools_and_results():
    messages, tools = prepare_prompt(FMT, CONVERSATION, TOOLS, QWEN_TEMPLATE)
    assert tools == TOOLS
    assert messages[2]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}  # decoded for the template
    assert messages[3] == CONVERSATION[3]  # tool turns pass through
    prompt = render(QWEN_TEMPLATE, messages, tools)
    assert json.dumps(WEATHER) in prompt
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in prompt
    assert ("<|im_start|>user\n<tool_response>\nsunny, 21C\n</tool_response>\n"
            "<tool_response>\nrain, 14C\n</tool_response><|im_end|>") in prompt
    assert prompt.count("# Tools") == 1
    assert prompt.endswith("<|im_start|>assistant\n")
    # The past call, as the template wrote it, parses back to the same call.
    past = prompt.split("<|im_start|>assistant\n")[1].split("<|im_end|>")[0]
    assert [(c.name, json.loads(c.arguments)) for c in FMT.parse(past).calls] == [
        ("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]


def test_plain_template_gets_the_hermes_block_from_the_format():
    messages, tools = prepare_prompt(FMT, CONVERSATION, TOOLS, PLAIN_TEMPLATE)
    assert tools is None
    assert all(set(m) == {"role", "content"} for m in messages)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    prompt = render(PLAIN_TEMPLATE, messages)
    assert prompt.startswith("<|im_start|>system\nBe brief.\n\n# Tools")
    assert f"<tools>\n{json.dumps(WEATHER)}\n</tools>" in prompt
    assert messages[2]["content"] == (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>')
    assert messages[3]["content"] == (
        "<tool_response>\nsunny, 21C\n</tool_response>\n<tool_response>\nrain, 14C\n</tool_response>")
    parsed = FMT.parse(messages[2]["content"], TOOLS)
    assert [c.name for c in parsed.calls] == ["get_weather", "get_weather"] and parsed.content == ""


def test_no_system_message_gets_one_for_tools():
    out = FMT.render_messages([{"role": "user", "content": "hi"}], TOOLS, template_renders_tools=False)
    assert out[0]["role"] == "system" and out[0]["content"].startswith("# Tools")
    assert FMT.render_messages([{"role": "user", "content": "hi"}], None) == [{"role": "user", "content": "hi"}]

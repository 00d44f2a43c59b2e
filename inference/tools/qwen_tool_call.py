"""Hermes-style calls, as Qwen 2.5/3 (and Hermes, and many fine-tunes) write them:

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

Qwen's own chat templates describe the tools and render past calls and `role: tool`
results, so when the template renders tools this format leaves that to it. Otherwise it
writes the same system block and `<tool_response>` user turns itself.

Small models slip in predictable ways (trailing commas, single quotes, Python literals,
arguments as a JSON string, `parameters` for `arguments`); `loads_tolerant` accepts those
with `json` first and `ast.literal_eval` after; model output is never evaluated.
"""
from __future__ import annotations

import ast
import json
import re
import warnings
from typing import Any

from .base import ToolFormat, ToolParseError, decode_arguments, function_of, tools_by_name
from .call_grammar import IndexedTools, json_rule, tool_parameters

TOOLS_SYSTEM = """\
# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{tools}
</tools>

For each function call, return a json object with function name and arguments within \
<tool_call></tool_call> XML tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>"""

_STRING = r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\''
_PY_WORDS = re.compile(rf"({_STRING})|\b(true|false|null)\b")
_TRAILING_COMMA = re.compile(rf"({_STRING})|,(\s*[}}\]])")
_PY_NAMES = {"true": "True", "false": "False", "null": "None"}


def loads_tolerant(text: str) -> Any:
    """JSON, or JSON with the usual slips; ToolParseError when neither reads it."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    no_commas = _TRAILING_COMMA.sub(lambda m: m.group(1) or m.group(2), text)
    try:
        return json.loads(no_commas)
    except (ValueError, RecursionError):
        pass
    python = _PY_WORDS.sub(lambda m: m.group(1) or _PY_NAMES[m.group(2)], text)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes such as \/ warn, harmlessly
            return ast.literal_eval(python)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        raise ToolParseError(f"not JSON: {exc}") from None


def _arguments(item: dict[str, Any]) -> Any:
    arguments = item.get("arguments", item.get("parameters"))
    if arguments is None:
        return {}
    if isinstance(arguments, str):  # a JSON string where an object belongs
        return loads_tolerant(arguments) if arguments.strip() else {}
    return arguments


# A cut call's name and where its arguments begin (QwenToolCall.partial_call).
_NAME = re.compile(r'"name"\s*:\s*"([^"\\]+)"')
_ARGUMENTS = re.compile(r'"(?:arguments|parameters)"\s*:\s*')

class QwenToolCall(ToolFormat):
    name = "qwen_tool_call"
    opener = "<tool_call>"
    closer = "</tool_call>"

    def template_tools(self, tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        return list(tools) if tools else None

    def render_messages(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        template_renders_tools: bool = False,
    ) -> list[dict[str, Any]]:
        if template_renders_tools:
            return [self._for_template(m) for m in messages]
        out: list[dict[str, Any]] = []
        previous = None
        for message in messages:
            role, content = message["role"], message.get("content")
            if role == "assistant" and message.get("tool_calls"):
                blocks = [self._call_text(call) for call in message["tool_calls"]]
                content = "\n".join(([content] if content else []) + blocks)
            elif role == "tool":
                response = f"<tool_response>\n{content or ''}\n</tool_response>"
                if previous == "tool":  # consecutive results share one user turn, as in Qwen's template
                    out[-1]["content"] += "\n" + response
                else:
                    out.append({"role": "user", "content": response})
                previous = role
                continue
            out.append({"role": role, "content": content if content is not None else ""})
            previous = role
        if tools:
            block = TOOLS_SYSTEM.format(tools="\n".join(json.dumps(t, ensure_ascii=False) for t in tools))
            if out and out[0]["role"] == "system" and isinstance(out[0]["content"], str):
                out[0]["content"] = f"{out[0]['content']}\n\n{block}" if out[0]["content"] else block
            else:
                out.insert(0, {"role": "system", "content": block})
        return out

    @staticmethod
    def _for_template(message: dict[str, Any]) -> dict[str, Any]:
        """Qwen's template renders tool turns itself; it wants arguments as an object."""
        item = dict(message)
        if item.get("content") is None:
            item["content"] = ""
        if item.get("tool_calls"):
            calls = []
            for call in item["tool_calls"]:
                function = function_of(call)
                arguments = decode_arguments(function.get("arguments"))
                calls.append({**call, "function": {**function, "arguments": arguments}})
            item["tool_calls"] = calls
        return item

    @staticmethod
    def _call_text(call: dict[str, Any]) -> str:
        function = function_of(call)
        payload = {"name": function.get("name", ""), "arguments": decode_arguments(function.get("arguments"))}
        return f"<tool_call>\n{json.dumps(payload, ensure_ascii=False)}\n</tool_call>"

    def call_grammar(self, tools: IndexedTools, parallel: bool) -> str:
        """`<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`, one JSON object per
        block, its name fixed to an offered tool and its arguments held to that tool's schema."""
        rules, names = [], []
        for index, tool in tools:
            call = {
                "type": "object",
                "properties": {"name": {"const": function_of(tool)["name"]},
                               "arguments": tool_parameters(tool, f"tools[{index}]")},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
            rules.append(f"call_{index}: {json_rule(call)}")
            names.append(f"call_{index}")
        more = ' ("\\n" call_block)*' if parallel else ""
        return "\n".join([
            f"calls: call_block{more}",
            'call_block: "<tool_call>\\n" call "\\n</tool_call>"',
            f"call: {' | '.join(names)}",
            *rules,
        ])

    def partial_call(self, body: str, tools: list[dict[str, Any]] | None) -> tuple[str, str] | None:
        """The name, and the arguments' JSON text as written so far."""
        name = _NAME.search(body)
        if name is None or (tools and name[1] not in tools_by_name(tools)):
            return None
        arguments = _ARGUMENTS.search(body, name.end())
        return name[1], body[arguments.end():].rstrip() if arguments else ""

    def parse_block(self, body: str, tools: list[dict[str, Any]] | None) -> list[tuple[str, Any]]:
        text = body.strip()
        if text.startswith("```"):  # a fenced JSON object inside the tags
            text = text.split("\n", 1)[-1].rsplit("```", 1)[0].strip() if "\n" in text else ""
        parsed = loads_tolerant(text)
        calls = []
        for item in parsed if isinstance(parsed, list) else [parsed]:
            if not isinstance(item, dict):
                raise ToolParseError("a call must be a JSON object")
            if "name" not in item and isinstance(item.get("function"), dict):
                item = item["function"]  # the OpenAI shape, echoed back
            calls.append((item.get("name"), _arguments(item)))
        return calls

"""No tool calling: the model's output is all content.

A conversation may still hold calls and results from elsewhere (a client that switched
models); they are written out as plain text so that nothing the model should see is lost,
and so that templates without tool roles accept the messages.
"""
from __future__ import annotations

from typing import Any

from .base import ParsedOutput, PassthroughParser, StreamParser, ToolFormat, call_names_by_id, function_of


class NoTools(ToolFormat):
    name = "none"
    opener = ""

    def render_messages(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        template_renders_tools: bool = False,
    ) -> list[dict[str, Any]]:
        names = call_names_by_id(messages)
        out = []
        for message in messages:
            role, content = message["role"], message.get("content")
            if role == "assistant" and message.get("tool_calls"):
                lines = [
                    f"[called {function_of(c).get('name', '')} with {function_of(c).get('arguments') or '{}'}"
                    f" (call {c.get('id', '?')})]"
                    for c in message["tool_calls"]
                ]
                content = "\n".join(([content] if content else []) + lines)
            elif role == "tool":
                call_id = message.get("tool_call_id", "?")
                name = message.get("name") or names.get(call_id, "a tool")
                role, content = "user", f"[result of {name} (call {call_id})]\n{content or ''}"
            out.append({"role": role, "content": content if content is not None else ""})
        return out

    def parse(self, text: str, tools: list[dict[str, Any]] | None = None) -> ParsedOutput:
        return ParsedOutput(text)

    def stream_parser(self, tools: list[dict[str, Any]] | None = None) -> StreamParser:
        return PassthroughParser()

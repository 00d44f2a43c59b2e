"""Tool-call formats by name (the `tool_format` of a model in models.yaml).

A format is one module with one ToolFormat subclass, which owns the three things a format
means: how tools and past calls are written into the prompt, how calls are read out of the
output, and the grammar that forces a call (`call_grammar`). Adding one is adding its module
and its line below; `manage.py check` then accepts its name in models.yaml (inference/checks.py).
"""
from __future__ import annotations

from .base import (
    ContentDelta, ParsedOutput, StreamEvent, StreamParser, ToolCall, ToolCallDelta, ToolFormat,
    ToolParseError, new_call_id, prepare_prompt, template_renders_tools,
)
from .gemma_tool_code import GemmaToolCode
from .none import NoTools
from .qwen_tool_call import QwenToolCall

TOOL_FORMATS: dict[str, type[ToolFormat]] = {
    NoTools.name: NoTools,
    GemmaToolCode.name: GemmaToolCode,
    QwenToolCall.name: QwenToolCall,
}


def get_tool_format(name: str) -> ToolFormat:
    """A format instance by name; formats hold no per-request state (parsers do)."""
    try:
        return TOOL_FORMATS[name]()
    except KeyError:
        raise KeyError(f"unknown tool format {name!r}; known: {', '.join(TOOL_FORMATS)}") from None


__all__ = [
    "TOOL_FORMATS", "ContentDelta", "ParsedOutput", "StreamEvent", "StreamParser", "ToolCall",
    "ToolCallDelta", "ToolFormat", "ToolParseError", "get_tool_format", "new_call_id",
    "prepare_prompt", "template_renders_tools",
]

"""Responses API items <-> what the shared chat path takes.

A conversation here is a list of items (messages with typed parts, function calls, their
outputs, reasoning); the engine takes OpenAI chat messages and tools. Stored items and fresh
ones go through the same conversion, so a continued conversation renders the very prompt its
earlier turns did and the prefix cache reuses it.
"""
from __future__ import annotations

import secrets
from typing import Any

from ...tools import ParsedOutput, ToolCall

TEXT_PARTS = ("input_text", "output_text")


def new_item_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def text_part(role: str, text: str) -> dict[str, Any]:
    if role == "assistant":
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {"type": "input_text", "text": text}


def input_items(value: str | list[dict]) -> list[dict[str, Any]]:
    """The request's input as the items it stores and lists: a string is a user message;
    messages get `type` and parts; every item gets an id."""
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    items = []
    for item in value:
        item = dict(item)
        kind = item.setdefault("type", "message")
        if kind == "message":
            if isinstance(item["content"], str):
                item["content"] = [text_part(item["role"], item["content"])]
            item.setdefault("status", "completed")
        prefix = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}.get(kind, "rs")
        if not item.get("id"):
            item["id"] = new_item_id(prefix)
        items.append(item)
    return items


def _chat_part(part: dict[str, Any]) -> dict[str, Any]:
    if part["type"] == "input_image":
        return {"type": "image_url", "image_url": {"url": part["image_url"], "detail": part.get("detail") or "auto"}}
    return {"type": "text", "text": part.get("refusal") if part["type"] == "refusal" else part["text"]}


def _joined_text(content: str | list[dict]) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("refusal") or part.get("text") or "" for part in content)


def chat_messages(items: list[dict[str, Any]], instructions: str | None) -> list[dict[str, Any]]:
    """OpenAI chat messages for `items`, after `instructions` as the system message.

    Consecutive function calls are one assistant turn (with the text before them, if any),
    as the chat templates expect; reasoning items of earlier turns are not part of a prompt.
    """
    messages: list[dict[str, Any]] = [{"role": "system", "content": instructions}] if instructions else []
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            content = item["content"]
            if item["role"] == "assistant":
                messages.append({"role": "assistant", "content": _joined_text(content)})
            else:
                messages.append({"role": item["role"], "content": content if isinstance(content, str)
                                 else [_chat_part(part) for part in content]})
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
                last["content"] = last["content"] or None
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": _joined_text(item["output"])})
    return messages


def chat_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Flat Responses function tools -> chat's {"type": "function", "function": {...}}."""
    if not tools:
        return None
    return [{"type": "function", "function": {key: tool[key] for key in ("name", "description", "parameters", "strict")
                                              if tool.get(key) is not None}} for tool in tools]


def chat_tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict):
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice


def chat_response_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    """`text.format` -> chat's `response_format` (the same grammars enforce it)."""
    fmt = (text or {}).get("format")
    if not fmt or fmt["type"] != "json_schema":
        return fmt
    return {"type": "json_schema", "json_schema": {
        key: fmt[key] for key in ("name", "schema", "strict", "description") if key in fmt}}


def message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {"type": "message", "id": item_id, "status": status, "role": "assistant",
            "content": [text_part("assistant", text)]}


def function_call_item(item_id: str, call: ToolCall, status: str = "completed") -> dict[str, Any]:
    return {"type": "function_call", "id": item_id, "call_id": call.id, "name": call.name,
            "arguments": call.arguments, "status": status}


def reasoning_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    """The model's thinking, as its text (no summary: nothing here writes one)."""
    return {"type": "reasoning", "id": item_id, "status": status, "summary": [],
            "content": [{"type": "reasoning_text", "text": text}]}


def output_items(parsed: ParsedOutput, status: str, reasoning: str = "") -> list[dict[str, Any]]:
    """A whole answer's output: its thinking (for a reasoning model), its text as one message
    (also when empty and nothing was called), then one function_call item per call."""
    items = [reasoning_item(new_item_id("rs"), reasoning, "completed")] if reasoning else []
    if parsed.content or not parsed.calls:
        items.append(message_item(new_item_id("msg"), parsed.content, status))
    items += [function_call_item(new_item_id("fc"), call) for call in parsed.calls]
    return items


def output_text(items: list[dict[str, Any]]) -> str:
    return "".join(part["text"] for item in items if item["type"] == "message"
                   for part in item["content"] if part["type"] == "output_text")

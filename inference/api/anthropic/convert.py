"""A validated Messages request -> the OpenAI-shaped request `build_chat_request` takes, so
Anthropic's clients reach the engine through the chat path: same templates, tool formats,
grammars and prefix cache.

Blocks map one to one: system blocks -> a system message; a user turn's `tool_result` blocks
-> `tool` messages (then its text and images as a user message); an assistant turn's
`tool_use` blocks -> its `tool_calls`. Thinking blocks sent back are dropped, as chat
completions drops past reasoning; `thinking` itself turns the model's thinking on or off.
"""
from __future__ import annotations

import json
import re
from typing import Any

# Claude Code opens its system prompt with a line whose `cch=` hash changes on every request
# ("x-anthropic-billing-header: cc_version=2.1.117.48f; cc_entrypoint=cli; cch=71fea;"). It
# means nothing to the model and, first in the prompt, would make every turn a prefix-cache miss.
BILLING_LINE = re.compile(r"^x-anthropic-billing-header:[^\n]*(\n|$)", re.MULTILINE)

TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def text_of(content: str | list[dict]) -> str:
    if isinstance(content, str):
        return content
    return "".join(block["text"] for block in content if block["type"] == "text")


def system_text(system: str | list[dict] | None) -> str:
    """The system prompt as one text, without Claude Code's per-request billing line."""
    if not system:
        return ""
    blocks = [system] if isinstance(system, str) else [block["text"] for block in system]
    kept = (BILLING_LINE.sub("", text) for text in blocks)
    return "\n\n".join(text for text in kept if text.strip())


def image_part(block: dict) -> dict:
    source = block["source"]
    url = source["url"] if source["type"] == "url" else f"data:{source['media_type']};base64,{source['data']}"
    return {"type": "image_url", "image_url": {"url": url}}


def user_parts(blocks: list[dict]) -> list[dict]:
    return [{"type": "text", "text": b["text"]} if b["type"] == "text" else image_part(b)
            for b in blocks if b["type"] in ("text", "image")]


def user_messages(content: str | list[dict]) -> list[dict]:
    """A user turn: its tool results first (they answer the turn before), then what it says."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    messages: list[dict] = []
    result_images: list[dict] = []
    for block in content:
        if block["type"] != "tool_result":
            continue
        result = block.get("content", "")
        text = text_of(result)
        if block.get("is_error") and not text:
            text = "error"
        messages.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": text})
        if isinstance(result, list):
            result_images += user_parts([b for b in result if b["type"] == "image"])
    parts = result_images + user_parts(content)
    if parts:
        messages.append({"role": "user", "content": parts})
    return messages


def assistant_message(content: str | list[dict]) -> dict:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    calls = [
        {"id": b["id"], "type": "function",
         "function": {"name": b["name"], "arguments": json.dumps(b["input"], ensure_ascii=False)}}
        for b in content if b["type"] == "tool_use"
    ]
    message: dict[str, Any] = {"role": "assistant", "content": text_of(content) or ("" if not calls else None)}
    if calls:
        message["tool_calls"] = calls
    return message


def chat_messages(data: dict[str, Any]) -> list[dict]:
    messages = []
    system = system_text(data.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    for message in data["messages"]:
        if message["role"] == "user":
            messages += user_messages(message["content"])
        else:
            messages.append(assistant_message(message["content"]))
    return messages


def chat_tools(tools: list[dict] | None) -> list[dict] | None:
    if not tools:
        return None
    return [{"type": "function", "function": {
        "name": t["name"], "description": t.get("description", ""), "parameters": t["input_schema"],
    }} for t in tools]


def chat_tool_choice(choice: dict | None) -> str | dict | None:
    if not choice:
        return None
    if choice["type"] == "tool":
        return {"type": "function", "function": {"name": choice["name"]}}
    return TOOL_CHOICES[choice["type"]]


def chat_data(data: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI-shaped request of a validated Messages (or count_tokens) request."""
    choice = data.get("tool_choice") or {}
    return {
        "model": data["model"],
        "stream": bool(data.get("stream")),
        "messages": chat_messages(data),
        "tools": chat_tools(data.get("tools")),
        "tool_choice": chat_tool_choice(data.get("tool_choice")),
        "parallel_tool_calls": not choice.get("disable_parallel_tool_use", False),
        "max_tokens": data.get("max_tokens"),
        "fit_max_tokens": True,  # a ceiling, as Anthropic's clients mean it (see SamplingParams)
        "temperature": data.get("temperature"),
        "top_p": data.get("top_p"),
        "top_k": data.get("top_k"),
        "stop": tuple(data.get("stop_sequences") or ()),
        "chat_template_kwargs": thinking_variables(data.get("thinking")),
        "keep_alive": data.get("keep_alive"),
    }


def thinking_variables(thinking: dict | None) -> dict[str, Any]:
    """`thinking` as the template variable reasoning models read: without it, the model's own
    default (a reasoning model thinks)."""
    if not thinking:
        return {}
    return {"enable_thinking": thinking["type"] != "disabled"}

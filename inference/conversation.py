"""A logged request and its answer as chat turns, for the admin's conversation view.

The request log keeps bodies as the client sent them, in three dialects (chat completions,
Anthropic messages, Responses input items); this reads any of them into one list of turns, so
the template draws bubbles without knowing the dialect. Images are shown by what the row
kept of them (format, size, hash): the log never stores their bytes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator


@dataclass
class Part:
    kind: str  # text | image | tool_call | tool_result | reasoning
    text: str = ""
    name: str = ""
    ref: str = ""  # a tool call's id, or the call a result answers
    image: dict[str, Any] | None = None


@dataclass
class Turn:
    role: str
    parts: list[Part] = field(default_factory=list)


def loads(text: str) -> Any:
    """The body as JSON, or None when it is not (cut by MLX_SERVER_LOG_BODY_CHARS, or not JSON)."""
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def pretty(text: str) -> str:
    """The body indented for reading; left as it is when it is not JSON."""
    data = loads(text)
    return text if data is None else json.dumps(data, indent=2, ensure_ascii=False)


def _arguments(value: Any) -> str:
    if isinstance(value, str):
        data = loads(value)
        return json.dumps(data, indent=2, ensure_ascii=False) if data is not None else value
    return json.dumps(value, indent=2, ensure_ascii=False)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_text_of(b.get("text", b.get("content", ""))) if isinstance(b, dict) else str(b)
                         for b in content)
    return "" if content is None else json.dumps(content, ensure_ascii=False)


class _Reader:
    """Walks the bodies in order, handing out the row's image records as image parts appear."""

    def __init__(self, images: list[dict[str, Any]]):
        self.images = iter(images or [])

    def image(self) -> Part:
        return Part("image", image=next(self.images, None))

    def blocks(self, content: Any) -> Iterator[Part]:
        if isinstance(content, str):
            if content:
                yield Part("text", content)
            return
        for block in content or []:
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind in ("text", "input_text", "output_text"):
                yield Part("text", block.get("text", ""))
            elif kind in ("image_url", "image", "input_image"):
                yield self.image()
            elif kind == "tool_use":
                yield Part("tool_call", _arguments(block.get("input", {})), name=block.get("name", ""),
                           ref=block.get("id", ""))
            elif kind == "tool_result":
                yield Part("tool_result", _text_of(block.get("content", "")), ref=block.get("tool_use_id", ""))
            elif kind in ("thinking", "redacted_thinking"):
                yield Part("reasoning", block.get("thinking", ""))
            else:
                yield Part("text", json.dumps(block, ensure_ascii=False))

    def message(self, message: dict[str, Any]) -> Turn:
        role = message.get("role", "assistant")
        turn = Turn(role)
        if message.get("reasoning_content"):
            turn.parts.append(Part("reasoning", message["reasoning_content"]))
        if role == "tool":
            turn.parts.append(Part("tool_result", _text_of(message.get("content")),
                                   ref=message.get("tool_call_id", "")))
        else:
            turn.parts.extend(self.blocks(message.get("content")))
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            turn.parts.append(Part("tool_call", _arguments(function.get("arguments", "")),
                                   name=function.get("name", ""), ref=call.get("id", "")))
        return turn

    def item(self, item: dict[str, Any]) -> Turn:
        """A Responses API input or output item."""
        kind = item.get("type", "message")
        if kind == "function_call":
            return Turn("assistant", [Part("tool_call", _arguments(item.get("arguments", "")),
                                           name=item.get("name", ""), ref=item.get("call_id", ""))])
        if kind == "function_call_output":
            return Turn("tool", [Part("tool_result", _text_of(item.get("output")), ref=item.get("call_id", ""))])
        if kind == "reasoning":
            return Turn("assistant", [Part("reasoning", _text_of(item.get("content") or item.get("summary")))])
        return self.message(item)


def _merge(turns: list[Turn]) -> list[Turn]:
    """Consecutive items of one role (a Responses answer's message and calls) as one bubble."""
    merged: list[Turn] = []
    for turn in turns:
        if merged and merged[-1].role == turn.role == "assistant":
            merged[-1].parts.extend(turn.parts)
        elif turn.parts:
            merged.append(turn)
    return merged


def request_turns(body: Any, reader: _Reader) -> list[Turn]:
    if not isinstance(body, dict):
        return []
    turns: list[Turn] = []
    system = body.get("system") or body.get("instructions")
    if system:
        turns.append(Turn("system", list(reader.blocks(system))))
    if isinstance(body.get("messages"), list):
        turns.extend(reader.message(m) for m in body["messages"] if isinstance(m, dict))
    inputs = body.get("input")
    if isinstance(inputs, str):
        turns.append(Turn("user", [Part("text", inputs)]))
    elif isinstance(inputs, list):
        turns.extend(reader.item(i) for i in inputs if isinstance(i, dict))
    return turns


def response_turns(body: Any, reader: _Reader) -> list[Turn]:
    if not isinstance(body, dict):
        return []
    if isinstance(body.get("choices"), list):  # a chat completion
        return [reader.message(c["message"]) for c in body["choices"] if isinstance(c.get("message"), dict)]
    if body.get("type") == "message":  # Anthropic's message
        return [Turn("assistant", list(reader.blocks(body.get("content"))))]
    if isinstance(body.get("output"), list):  # a Responses API response
        return [reader.item(i) for i in body["output"] if isinstance(i, dict)]
    if "role" in body:  # the row of a streamed answer: an assistant message
        return [reader.message(body)]
    return []


def conversation(request_body: str, response_body: str, images: list[dict[str, Any]]) -> list[Turn]:
    """The request's turns then the answer's (each with its consecutive assistant items merged)."""
    reader = _Reader(images)
    return [*_merge(request_turns(loads(request_body), reader)), *_merge(response_turns(loads(response_body), reader))]

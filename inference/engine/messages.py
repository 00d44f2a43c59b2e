"""OpenAI chat messages -> the plain dicts chat templates expect."""
from __future__ import annotations

from typing import Any

from .types import UnsupportedContent


def text_of(content: Any, *, where: str) -> str:
    """Content as one string: a string as is, text parts joined; images refused here.

    Text-only models cannot see images, so an image part is an error the client must hear
    about rather than a silently dropped part.
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for j, part in enumerate(content):
        if part.get("type") == "text":
            texts.append(part["text"])
        else:
            raise UnsupportedContent(
                f"{where}.content[{j}] is of type {part.get('type')!r}, which this model "
                "does not accept (it is a text-only model)",
                param=f"{where}.content[{j}]",
            )
    return "\n".join(texts)


def _template_message(message: dict[str, Any], content: Any) -> dict[str, Any]:
    item = {"role": "system" if message["role"] == "developer" else message["role"], "content": content}
    for key in ("name", "tool_calls", "tool_call_id"):
        if message.get(key) is not None:
            item[key] = message[key]
    return item


def to_template_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        _template_message(message, text_of(message.get("content"), where=f"messages[{i}]"))
        for i, message in enumerate(messages)
    ]


def to_vision_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Like to_template_messages, for a model that sees images: a turn with images keeps its
    parts in order, text as {"type": "text"} and each image as {"type": "image"} (what the
    families' chat templates turn into their image markers; the decoded images travel beside
    the messages, ChatRequest.images). Other turns are plain strings."""
    out = []
    for i, message in enumerate(messages):
        content = message.get("content")
        if not (isinstance(content, list) and any(p.get("type") == "image_url" for p in content)):
            out.append(_template_message(message, text_of(content, where=f"messages[{i}]")))
            continue
        parts = [{"type": "image"} if part.get("type") == "image_url" else {"type": "text", "text": part.get("text", "")}
                 for part in content]
        out.append(_template_message(message, parts))
    return out


def prompt_chars(messages: list[dict[str, Any]]) -> int:
    """The characters of the turns a chat template renders verbatim (everything but the
    assistant's, which some templates trim of their thinking): at most the prompt's."""
    total = 0
    for message in messages:
        if message.get("role") == "assistant":
            continue
        content = message.get("content")
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(part.get("text") or "") for part in content if part.get("type") == "text")
    return total

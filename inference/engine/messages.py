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


def to_template_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, message in enumerate(messages):
        role = "system" if message["role"] == "developer" else message["role"]
        item = {"role": role, "content": text_of(message.get("content"), where=f"messages[{i}]")}
        for key in ("name", "tool_calls", "tool_call_id"):
            if message.get(key) is not None:
                item[key] = message[key]
        out.append(item)
    return out

"""Reasoning formats: how a thinking model's output splits into its thinking and its answer.

Pure text, like the tool formats: no model, no tokenizer, no HTTP. A model's `reasoning`
setting in models.yaml names its format. `think_tags` is the `<think>...</think>` block that
Qwen3, QwQ and the DeepSeek-R1 distills write before their answer; some of their templates
already write `<think>` at the end of the prompt (the R1 distills always, Qwen3's thinking
releases too), so the output starts inside the block and only the closing tag comes. The
engine says which (`opens_in`, seen on the rendered prompt); the splitter is told.

Every dialect gets the thinking as `ReasoningDelta` events from `inference/api/generation.py`,
which runs the splitter before the tool parser: the tool parser, and so `content`, only ever
see the answer.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

WHITESPACE = " \t\r\n"


@dataclass(frozen=True)
class ReasoningDelta:
    """A piece of the model's thinking, in order; the pieces concatenate to the whole
    reasoning text (Outcome.reasoning). Never part of the answer: the chat dialect writes it as
    `reasoning_content`, the Responses API as a `reasoning` item, Anthropic's as `thinking`."""

    text: str


@dataclass(frozen=True)
class ReasoningFormat:
    """A block the model thinks in before it answers, between `open_tag` and `close_tag`."""

    name: str
    open_tag: str
    close_tag: str

    def opens_in(self, prompt_text: str) -> bool:
        """Whether the rendered prompt already opened the block (its last non-space text is the
        open tag), so the output starts inside it."""
        return prompt_text.rstrip(WHITESPACE).endswith(self.open_tag)

    def splitter(self, opened: bool) -> ReasoningSplitter:
        return ReasoningSplitter(self, opened)

    def grammar(self) -> str:
        """Lark rules (llguidance's dialect) for rule `thinking`: the block, any text up to
        the first close tag (lazy, so it ends there), then whitespace; a constrained answer
        follows it (inference/constraints/grammar.py)."""
        close = re.escape(self.close_tag).replace("/", "\\/")
        return "\n".join([
            f"thinking: {json.dumps(self.open_tag)} thinking_text thinking_space",
            f"thinking_text[lazy]: /(?s:.*){close}/",
            "thinking_space: /[ \\t\\r\\n]*/",
        ])


REASONING_FORMATS: dict[str, ReasoningFormat | None] = {
    "none": None,  # the output is all answer
    "think_tags": ReasoningFormat("think_tags", "<think>", "</think>"),
}


def get_reasoning_format(name: str) -> ReasoningFormat | None:
    """The format a models.yaml `reasoning` value names (None: the model does not think)."""
    try:
        return REASONING_FORMATS[name]
    except KeyError:
        raise KeyError(f"unknown reasoning format {name!r}; known: {', '.join(REASONING_FORMATS)}") from None


def _partial_suffix(text: str, tag: str) -> int:
    """How many trailing characters of `text` could be the start of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


class ReasoningSplitter:
    """One generation's text, streamed, cut into thinking (ReasoningDelta) and answer (str).

    The block counts only at the very start of the output (leading whitespace aside): a tag
    later on is answer text. Text that could still be a tag is held back until it is known;
    whitespace between the tags and the thinking, and between the block and the answer, is
    dropped, so neither part starts or ends with the newlines the templates put there.
    """

    def __init__(self, fmt: ReasoningFormat, opened: bool):
        self.format = fmt
        self.state = "thinking" if opened else "start"  # start | thinking | after | answer
        self.held = ""
        self.reasoning = ""  # the thinking so far, as the deltas gave it
        self._thought = False  # thinking text other than whitespace has come

    @property
    def thinking(self) -> bool:
        return self.state == "thinking"

    def feed(self, text: str) -> list[ReasoningDelta | str]:
        out: list[ReasoningDelta | str] = []
        text = self.held + text
        self.held = ""
        while text:
            if self.state == "start":
                stripped = text.lstrip(WHITESPACE)
                tag = self.format.open_tag
                if stripped.startswith(tag):
                    self.state, text = "thinking", stripped[len(tag):]
                elif tag.startswith(stripped):  # nothing yet, or the tag's beginning
                    self.held = text
                    return out
                else:
                    self.state = "answer"
            elif self.state == "thinking":
                text = self._think(text, out)
            elif self.state == "after":
                text = text.lstrip(WHITESPACE)
                if text:
                    self.state = "answer"
            else:
                out.append(text)
                text = ""
        return out

    def _think(self, text: str, out: list[ReasoningDelta | str]) -> str:
        """Thinking text up to the close tag; what comes after it is returned."""
        close = self.format.close_tag
        if not self._thought:
            text = text.lstrip(WHITESPACE)
        end = text.find(close)
        rest = ""
        if end >= 0:
            text, rest = text[:end].rstrip(WHITESPACE), text[end + len(close):]
            self.state = "after"
        else:
            keep = _partial_suffix(text, close)
            body = text[:len(text) - keep]
            trailing = len(body) - len(body.rstrip(WHITESPACE))
            self.held = text[len(body) - trailing:]
            text = body[:len(body) - trailing]
        if text:
            self._thought = True
            self.reasoning += text
            out.append(ReasoningDelta(text))
        return rest

    def finish(self) -> list[ReasoningDelta | str]:
        """The end of the output: what was held back is final (a half tag is text)."""
        held, self.held = self.held, ""
        if self.state == "thinking":
            held = held.rstrip(WHITESPACE)
            if held:
                self.reasoning += held
                return [ReasoningDelta(held)]
            return []
        if self.state == "start" and held.strip(WHITESPACE):
            return [held]
        return []

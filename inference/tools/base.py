"""What every tool-call format shares: the call/event types, the format interface, and one
streaming parser for formats whose calls sit in an opener ... closer block.

Formats are pure text <-> calls functions: no model, no tokenizer, no HTTP. A format owns
its three faces: how tools and past calls are rendered into the prompt, how calls are parsed
out of the output, and the grammar that forces a call in its syntax. Whole-output
parsing is the streaming parser fed everything at once, so `parse(text)` and a stream of the
same text cannot disagree, whatever the chunk boundaries.
"""
from __future__ import annotations

import json
import logging
import re
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

log = logging.getLogger(__name__)


def new_call_id() -> str:
    """An OpenAI-looking call id: `call_` and 24 hex digits."""
    return "call_" + secrets.token_hex(12)


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # a JSON object as a string: OpenAI's wire format


@dataclass
class ParsedOutput:
    """A whole generation split into what the user reads and the calls it makes.

    `content` is the text outside successfully parsed call blocks. Whitespace that only
    separated a call block from what follows is dropped, and so is trailing whitespace once
    at least one call was parsed; nothing else is. A block that could not be parsed stays in
    `content` verbatim and its raw text is also listed in `failures`.
    """

    content: str
    calls: list[ToolCall] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


@dataclass
class ContentDelta:
    text: str


@dataclass
class ToolCallDelta:
    """OpenAI's streaming shape: the first delta of a call has id and name, later ones only
    argument fragments; a call's fragments concatenate to its `arguments`."""

    index: int
    id: str | None
    name: str | None
    arguments: str


StreamEvent = ContentDelta | ToolCallDelta


class ToolParseError(ValueError):
    """A call block that does not hold calls we can hand to a client."""


# --- helpers the formats share ------------------------------------------------------------


def function_of(tool: dict[str, Any]) -> dict[str, Any]:
    """The `function` object of an OpenAI tool (tolerates a bare function object)."""
    return tool.get("function", tool) if isinstance(tool, dict) else {}


def tools_by_name(tools: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in map(function_of, tools or []) if isinstance(f.get("name"), str)}


def decode_arguments(arguments: Any) -> Any:
    """An OpenAI `arguments` value as a Python object; undecodable strings come back as is."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return arguments
    return {} if arguments is None else arguments


def call_names_by_id(messages: list[dict[str, Any]]) -> dict[str, str]:
    """Which function each past call id named, so a tool result can say what it answers."""
    names = {}
    for message in messages:
        for call in message.get("tool_calls") or []:
            name = function_of(call).get("name")
            if call.get("id") and name:
                names[call["id"]] = name
    return names


def template_renders_tools(chat_template: str | dict[str, str] | None) -> bool:
    """Whether a chat template renders `tools` itself (Qwen's and Hermes-style ones do).

    A heuristic on the template source: it must mention the `tools` variable. Templates that
    do also render assistant `tool_calls` and `role: tool` messages in practice.
    """
    if isinstance(chat_template, dict):  # named templates: the default one renders chats
        chat_template = chat_template.get("default") or next(iter(chat_template.values()), None)
    return bool(chat_template) and re.search(r"\btools\b", chat_template) is not None


# --- streaming ----------------------------------------------------------------------------


class StreamParser(ABC):
    """Turns text deltas into content and tool-call events; one per request."""

    @abstractmethod
    def feed(self, text: str) -> list[StreamEvent]:
        """Take the next generated text; return the events now safe to emit (maybe none)."""

    @abstractmethod
    def finish(self, cut: bool = False) -> list[StreamEvent]:
        """Generation ended: flush what was held back (an unclosed block becomes content);
        `cut`: it ended at max_tokens, so an unclosed block is a call cut short (as far as it
        got, when its name was written) and never content."""

    @abstractmethod
    def result(self) -> ParsedOutput:
        """After finish(): everything emitted, as one ParsedOutput."""


class PassthroughParser(StreamParser):
    """For formats without calls: every chunk is content, at once."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    def feed(self, text: str) -> list[StreamEvent]:
        self._parts.append(text)
        return [ContentDelta(text)] if text else []

    def finish(self, cut: bool = False) -> list[StreamEvent]:
        return []

    def result(self) -> ParsedOutput:
        return ParsedOutput("".join(self._parts))


def _partial_suffix(text: str, opener: str) -> int:
    """Length of the longest end of `text` that is a proper start of `opener`."""
    for k in range(min(len(opener) - 1, len(text)), 0, -1):
        if text.endswith(opener[:k]):
            return k
    return 0


class BlockStreamParser(StreamParser):
    """Calls live in `opener ... closer` blocks; everything else is content.

    Like a stop-string filter, text that could be the start of the opener is held back, so
    no part of an opener ever reaches a ContentDelta. Once the opener is seen, the block is
    buffered until its closer, then parsed whole: calls become ToolCallDeltas, a bad block
    becomes content (and a failure). Trailing whitespace of content is held until more
    content follows, because whitespace that only precedes calls at the end is dropped.
    """

    def __init__(self, fmt: ToolFormat, tools: list[dict[str, Any]] | None):
        self._fmt, self._tools = fmt, tools
        self._opener, self._closer = fmt.opener, fmt.closer
        self._buf = ""
        self._in_block = False
        self._held_ws = ""
        self._after_call = False
        self._content: list[str] = []
        self._calls: list[ToolCall] = []
        self._failures: list[str] = []
        self._done = False

    def feed(self, text: str) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        self._buf += text
        while True:
            if not self._in_block:
                i = self._buf.find(self._opener)
                if i < 0:
                    cut = len(self._buf) - _partial_suffix(self._buf, self._opener)
                    self._emit_content(self._buf[:cut], out)
                    self._buf = self._buf[cut:]
                    return out
                self._emit_content(self._buf[:i], out)
                self._buf, self._in_block = self._buf[i:], True
            j = self._buf.find(self._closer, len(self._opener))
            if j < 0:
                return out
            end = j + len(self._closer)
            raw, self._buf, self._in_block = self._buf[:end], self._buf[end:], False
            self._close_block(raw, raw[len(self._opener):j], out)

    def finish(self, cut: bool = False) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if self._done:
            return out
        self._done = True
        if self._in_block:  # never closed: not a whole call
            self._failures.append(self._buf)
            if cut:
                self._cut_block(self._buf[len(self._opener):], out)
                self._buf = ""  # markup, not content
        self._emit_content(self._buf, out)
        self._buf, self._in_block = "", False
        if self._held_ws and not self._calls:
            self._content.append(self._held_ws)
            out.append(ContentDelta(self._held_ws))
        self._held_ws = ""
        return out

    def result(self) -> ParsedOutput:
        return ParsedOutput("".join(self._content), list(self._calls), list(self._failures))

    def _emit_content(self, text: str, out: list[StreamEvent]) -> None:
        if self._after_call:
            text = text.lstrip()
            if not text:
                return
            self._after_call = False
        text = self._held_ws + text
        body = text.rstrip()
        self._held_ws = text[len(body):]
        if body:
            self._content.append(body)
            out.append(ContentDelta(body))

    def _close_block(self, raw: str, body: str, out: list[StreamEvent]) -> None:
        try:
            calls = self._fmt.calls_in_block(body, self._tools)
        except Exception as exc:  # a bad block is content, never a failed response
            if not isinstance(exc, ToolParseError):
                log.warning("%s could not read a call block", self._fmt.name, exc_info=True)
            self._failures.append(raw)
            self._emit_content(raw, out)
            return
        for name, arguments in calls:
            self._add_call(name, arguments, out)
        self._after_call = True

    def _cut_block(self, body: str, out: list[StreamEvent]) -> None:
        """The calls of a block max_tokens cut: whole ones when only the closer was missing,
        else the one it had begun, as far as it got."""
        body = body[:len(body) - _partial_suffix(body, self._closer)] if self._closer else body
        try:
            calls = self._fmt.calls_in_block(body, self._tools)
        except Exception:  # unfinished, as expected
            partial = self._fmt.partial_call(body, self._tools)
            calls = [partial] if partial is not None else []
        for name, arguments in calls:
            self._add_call(name, arguments, out)

    def _add_call(self, name: str, arguments: str, out: list[StreamEvent]) -> None:
        call = ToolCall(new_call_id(), name, arguments)
        index = len(self._calls)
        self._calls.append(call)
        out.append(ToolCallDelta(index, call.id, call.name, ""))
        out.append(ToolCallDelta(index, None, None, call.arguments))


# --- the format interface -----------------------------------------------------------------


class ToolFormat(ABC):
    """One model family's way of being told about tools and of asking for calls."""

    name: ClassVar[str]
    opener: ClassVar[str]  # the text that starts a call block
    closer: ClassVar[str] = ""  # the text that ends it

    @abstractmethod
    def render_messages(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        template_renders_tools: bool = False,
    ) -> list[dict[str, Any]]:
        """OpenAI-shaped messages -> messages for the chat template, with the tools described
        and past calls/results written the way this model family writes them.

        The roles are already normalized (inference/engine/messages.py: `developer` is
        `system` by then), so a format handles system, user, assistant and tool only.

        `template_renders_tools`: the tokenizer's template renders `tools=` (and tool
        turns) itself, so the format should leave that to it where it can.
        """

    def template_tools(self, tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        """What to pass as `tools=` to apply_chat_template; None: the prompt has them already."""
        return None

    def call_grammar(self, tools: list[tuple[int, dict[str, Any]]], parallel: bool) -> str | None:
        """Lark rules defining `calls` (one call block, or several when `parallel`) in this
        format's own syntax, to force a call to one of the (index, tool) pairs; None: this
        format has no call syntax, so a call cannot be forced. Raises ConstraintError naming
        the offending param when a tool cannot be written in this syntax."""
        return None

    def parse_block(self, body: str, tools: list[dict[str, Any]] | None) -> list[tuple[str, Any]]:
        """The (name, arguments object) pairs in one block's inner text, or ToolParseError."""
        raise ToolParseError(f"{self.name} has no call blocks")

    def partial_call(self, body: str, tools: list[dict[str, Any]] | None) -> tuple[str, str] | None:
        """The call an unclosed block (cut by max_tokens) had begun: its name and its
        arguments as far as they got; None when not even a known name was written."""
        return None

    def calls_in_block(self, body: str, tools: list[dict[str, Any]] | None) -> list[tuple[str, str]]:
        """parse_block, checked: at least one call, known names when tools are given, and
        arguments that are a JSON object (returned as its JSON string)."""
        calls = self.parse_block(body, tools)
        if not calls:
            raise ToolParseError("empty call block")
        known = tools_by_name(tools)
        out = []
        for name, arguments in calls:
            if not isinstance(name, str) or not name:
                raise ToolParseError("a call without a function name")
            if known and name not in known:
                raise ToolParseError(f"{name!r} is not one of the tools offered")
            if not isinstance(arguments, dict):
                raise ToolParseError(f"arguments of {name!r} are not an object")
            try:
                out.append((name, json.dumps(arguments, ensure_ascii=False, allow_nan=False)))
            except (TypeError, ValueError, RecursionError) as exc:
                raise ToolParseError(f"arguments of {name!r} are not JSON: {exc}") from None
        return out

    def parse(self, text: str, tools: list[dict[str, Any]] | None = None) -> ParsedOutput:
        """A whole generation: the stream parser fed everything at once."""
        parser = self.stream_parser(tools)
        parser.feed(text)
        parser.finish()
        return parser.result()

    def stream_parser(self, tools: list[dict[str, Any]] | None = None) -> StreamParser:
        """A fresh parser for one request's output."""
        return BlockStreamParser(self, tools)


def prepare_prompt(
    fmt: ToolFormat,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    chat_template: str | dict[str, str] | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """The prompt side in one call: (messages, tools=) for tokenizer.apply_chat_template."""
    renders = template_renders_tools(chat_template)
    rendered = fmt.render_messages(messages, tools, template_renders_tools=renders)
    return rendered, (fmt.template_tools(tools) if renders and tools else None)

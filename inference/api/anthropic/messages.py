"""One Messages call in flight: a Generation written as Anthropic's message object, or as its
stream events (message_start, content_block_start/delta/stop, message_delta, message_stop,
ping, error), in Anthropic's order: one block open at a time, thinking, text and tool_use
blocks numbered by their place in the message's content."""
from __future__ import annotations

import json
from typing import Any, AsyncIterator, Iterable

from registry.specs import ModelSpec

from ...engine import Finished, JobStream
from ...reasoning import ReasoningDelta, ReasoningFormat
from ...tools import ContentDelta, ToolCall, ToolFormat
from ..errors import APIError
from ..generation import Generation, GenerationEvent, Outcome
from ..logs import CallLog
from .errors import body_of

STOP_REASONS = {"length": "max_tokens", "tool_calls": "tool_use", "stop": "end_turn", "cancelled": "end_turn"}


def sse_event(name: str, data: dict[str, Any]) -> bytes:
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {name}\ndata: {payload}\n\n".encode()


def usage_of(prompt_tokens: int, cached_tokens: int, output_tokens: int) -> dict[str, Any]:
    """Anthropic counts cached prompt tokens apart: input_tokens are the ones not read from
    the cache. Nothing is written to a cache the client pays for: creation is 0."""
    return {
        "input_tokens": prompt_tokens - cached_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached_tokens,
        "output_tokens": output_tokens,
    }


def stop_of(finished: Finished, finish_reason: str) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence)."""
    if finish_reason == "stop" and finished.stop_sequence is not None:
        return "stop_sequence", finished.stop_sequence
    return STOP_REASONS[finish_reason], None


def tool_input(call: ToolCall) -> dict[str, Any]:
    """The parsed call's arguments as an object (the parser only lets JSON objects through)."""
    value = json.loads(call.arguments or "{}")
    return value if isinstance(value, dict) else {}


def thinking_block(text: str) -> dict[str, Any]:
    """No signature can be made here (Anthropic signs its own thinking): an empty one."""
    return {"type": "thinking", "thinking": text, "signature": ""}


def content_of(outcome: Outcome) -> list[dict[str, Any]]:
    parsed = outcome.parsed
    blocks: list[dict[str, Any]] = [thinking_block(outcome.reasoning)] if outcome.reasoning else []
    if parsed.content:
        blocks.append({"type": "text", "text": parsed.content})
    blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": tool_input(c)} for c in parsed.calls]
    return blocks


class MessageCall:
    """The Messages dialect's StreamEncoder over one Generation."""

    def __init__(self, *, log: CallLog, spec: ModelSpec, events: JobStream, tools: list[dict] | None,
                 tool_format: ToolFormat, reasoning: ReasoningFormat | None = None):
        self.spec = spec
        self.id = log.request_id
        self.generation = Generation.of(log=log, events=events, tools=tools, tool_format=tool_format,
                                        reasoning=reasoning)
        self._index = -1  # the open block's index; -1 before the first
        self._open: str | None = None  # its type: thinking | text | tool_use
        self._failed = False

    async def start(self) -> None:
        await self.generation.start()

    def _message(self, content: list[dict], stop_reason: str | None, stop_sequence: str | None,
                 usage: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self.id, "type": "message", "role": "assistant", "model": self.spec.id, "content": content,
            "stop_reason": stop_reason, "stop_sequence": stop_sequence, "usage": usage,
        }

    async def complete(self) -> dict[str, Any]:
        """The whole answer as one message object."""
        outcome = await self.generation.whole()
        finished = outcome.finished
        return self._message(content_of(outcome), *stop_of(finished, outcome.finish_reason),
                             usage_of(finished.prompt_tokens, finished.cached_tokens, finished.completion_tokens))

    def stream(self) -> AsyncIterator[bytes]:
        return self.generation.stream(self)

    def _close_block(self) -> Iterable[bytes]:
        if self._open is not None:
            yield sse_event("content_block_stop", {"type": "content_block_stop", "index": self._index})
            self._open = None

    def _open_block(self, block: dict[str, Any]) -> Iterable[bytes]:
        yield from self._close_block()
        self._index += 1
        self._open = block["type"]
        yield sse_event("content_block_start", {"type": "content_block_start", "index": self._index,
                                                "content_block": block})

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return sse_event("content_block_delta", {"type": "content_block_delta", "index": self._index, "delta": delta})

    # --- StreamEncoder ---------------------------------------------------------------------

    def opening(self) -> Iterable[bytes]:
        started = self.generation.started
        usage = usage_of(started.prompt_tokens, started.cached_tokens, 0) if started else usage_of(0, 0, 0)
        yield sse_event("message_start", {"type": "message_start", "message": self._message([], None, None, usage)})
        yield sse_event("ping", {"type": "ping"})

    def event(self, event: GenerationEvent) -> Iterable[bytes]:
        if isinstance(event, ReasoningDelta):
            if self._open != "thinking":
                yield from self._open_block(thinking_block(""))
            yield self._delta({"type": "thinking_delta", "thinking": event.text})
            return
        if isinstance(event, ContentDelta):
            if self._open != "text":
                yield from self._open_block({"type": "text", "text": ""})
            yield self._delta({"type": "text_delta", "text": event.text})
            return
        if event.id is not None:  # a call's first delta
            yield from self._open_block({"type": "tool_use", "id": event.id, "name": event.name, "input": {}})
        if event.arguments:
            yield self._delta({"type": "input_json_delta", "partial_json": event.arguments})

    async def settle(self, outcome: Outcome) -> None:
        """Nothing to do before the end: a message is not kept."""

    def closing(self, outcome: Outcome) -> Iterable[bytes]:
        yield from self._close_block()
        finished = outcome.finished
        stop_reason, stop_sequence = stop_of(finished, outcome.finish_reason)
        yield sse_event("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
            "usage": usage_of(finished.prompt_tokens, finished.cached_tokens, finished.completion_tokens),
        })

    def error(self, error: APIError) -> Iterable[bytes]:
        self._failed = True
        yield sse_event("error", body_of(error))

    def end(self) -> Iterable[bytes]:
        if not self._failed:  # a failed stream ends at its error event
            yield sse_event("message_stop", {"type": "message_stop"})

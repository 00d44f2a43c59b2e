"""Chat completions: validated request -> engine events -> OpenAI JSON or SSE chunks."""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any, AsyncIterator, Iterator

from registry.specs import ModelSpec

from ..constraints import ConstraintError, build_grammar
from ..engine.engine import JobStream, QueueFull
from ..engine.types import (
    ChatRequest, ContextLengthExceeded, Delta, EngineError, Failed, Finished, InvalidImage,
    Loading, ModelLoadError, SamplingParams, Started, UnsupportedContent,
)
from ..models import RequestLog
from ..tools import ContentDelta, ParsedOutput, StreamEvent, StreamParser, ToolCallDelta, ToolFormat
from ..tools.base import PassthroughParser
from .errors import APIError, InvalidRequest, ServerError, ServiceUnavailable, body_of
from .errors import QueueFull as TooManyWaiting
from .logs import CallLog
from .responses import ChatCompletionResponseSerializer

SSE_DONE = b"data: [DONE]\n\n"


def build_chat_request(data: dict[str, Any], *, tool_format: ToolFormat) -> ChatRequest:
    """The engine's request; `tool_format` (the model's) is the syntax a forced call takes."""
    tools = data.get("tools") or None
    if data.get("tool_choice") == "none":
        tools = None  # the model is not told about them, so it cannot call them
    try:
        grammar = build_grammar(
            response_format=data.get("response_format"), tools=tools, tool_choice=data.get("tool_choice"),
            parallel_tool_calls=data.get("parallel_tool_calls") is not False, tool_format=tool_format,
        )
    except ConstraintError as exc:
        raise InvalidRequest(str(exc), param=exc.param) from None
    temperature = data.get("temperature")
    top_p = data.get("top_p")
    if top_p == 0:  # only the most likely token survives: greedy
        temperature = 0.0
    params = SamplingParams(
        max_tokens=data.get("max_completion_tokens") or data.get("max_tokens"),
        temperature=1.0 if temperature is None else temperature,
        top_p=1.0 if not top_p else top_p,
        stop=data.get("stop") or (),
        seed=data.get("seed"),
        presence_penalty=data.get("presence_penalty") or 0.0,
        frequency_penalty=data.get("frequency_penalty") or 0.0,
        logit_bias=data.get("logit_bias") or {},
        grammar=grammar,
    )
    return ChatRequest(messages=data["messages"], params=params, tools=tools)


def api_error_of(error: EngineError) -> APIError:
    if isinstance(error, ContextLengthExceeded):
        return InvalidRequest(str(error), code=error.code, param="messages")
    if isinstance(error, (UnsupportedContent, InvalidImage)):
        return InvalidRequest(str(error), code=error.code, param=error.details.get("param"))
    if isinstance(error, ModelLoadError):
        return ServiceUnavailable(str(error), code=error.code)
    if isinstance(error, QueueFull):
        return TooManyWaiting(str(error), retry_after=error.details["retry_after"])
    return ServerError(str(error), code=error.code)


def sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def usage_of(finished: Finished) -> dict[str, Any]:
    return {
        "prompt_tokens": finished.prompt_tokens,
        "completion_tokens": finished.completion_tokens,
        "total_tokens": finished.prompt_tokens + finished.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": finished.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def tool_call_delta(delta: ToolCallDelta) -> dict[str, Any]:
    """OpenAI's streamed tool_calls item: id, type and name only on a call's first delta."""
    item: dict[str, Any] = {"index": delta.index, "function": {"arguments": delta.arguments}}
    if delta.id is not None:
        item["id"] = delta.id
        item["type"] = "function"
    if delta.name is not None:
        item["function"]["name"] = delta.name
    return item


def message_of(parsed: ParsedOutput) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": parsed.content, "refusal": None}
    if parsed.calls:
        message["content"] = parsed.content or None
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in parsed.calls
        ]
    return message


class ChatCall:
    """One chat completion in flight: its events, its log row, its response shapes.

    Text deltas go through the request's tool parser (a pass-through without tools), so
    streamed and whole answers are cut into content and tool calls by the same code.
    """

    def __init__(self, *, log: CallLog, spec: ModelSpec, events: JobStream, include_usage: bool,
                 tools: list[dict] | None, tool_format: ToolFormat):
        self.log = log
        self.spec = spec
        self.events = events
        self.include_usage = include_usage
        self.created = int(time.time())
        self.parser: StreamParser = (
            tool_format.stream_parser(tools) if tools else PassthroughParser()
        )
        self._closed = False

    def _close_parser(self) -> list[StreamEvent]:
        """Flush the parser once (at the end, or when the client leaves)."""
        if self._closed:
            return []
        self._closed = True
        return self.parser.finish()

    async def start(self) -> None:
        """Wait until generation starts, so a failure before it gets a real HTTP status."""
        try:
            async for event in self.events:
                if isinstance(event, Loading):
                    self.log.set(swapped_from=event.unloaded or "")
                elif isinstance(event, Started):
                    self.log.set(prompt_tokens=event.prompt_tokens, cached_tokens=event.cached_tokens)
                    return
                elif isinstance(event, Failed):
                    raise api_error_of(event.error)
        except asyncio.CancelledError:  # the client left while waiting in the queue or a load
            await self._log_cancelled()
            raise
        except Exception:  # the view answers it; the engine stops working for nobody
            await self.events.aclose()
            raise
        raise ServerError("the engine ended the request without an answer")

    async def _log_cancelled(self) -> None:
        """The client left: the row says so, with what was made until the engine stopped."""
        self._close_parser()
        self.log.set(status_code=499, outcome=RequestLog.Outcome.CANCELLED, finish_reason="cancelled",
                     completion_tokens=self.events.generated, error="client disconnected")
        if "response" not in self.log.fields:
            self.log.set(response=message_of(self.parser.result()))
        await self.log.write()

    def _finish(self, finished: Finished) -> tuple[ParsedOutput, str]:
        """Close the parser; the finish_reason a client sees and the log row's fields."""
        parsed = self.parser.result()
        reason = finished.finish_reason
        if parsed.calls and reason == "stop":
            reason = "tool_calls"
        self.log.set(
            completion_tokens=finished.completion_tokens,
            finish_reason=reason,
            decode_tps=finished.generation_tps or None,
            status_code=200,
            outcome=RequestLog.Outcome.CANCELLED if reason == "cancelled" else RequestLog.Outcome.OK,
            tool_calls=parsed.calls,
            tool_failures=parsed.failures,
            response=message_of(parsed),
        )
        return parsed, reason

    async def complete(self) -> dict[str, Any]:
        """The whole answer as one chat.completion object."""
        try:
            async for event in self.events:
                if isinstance(event, Delta):
                    self.log.mark_first_token()
                    self.parser.feed(event.text)
                elif isinstance(event, Finished):
                    self._close_parser()
                    parsed, reason = self._finish(event)
                    return ChatCompletionResponseSerializer({
                        "id": self.log.request_id,
                        "object": "chat.completion",
                        "created": self.created,
                        "model": self.spec.id,
                        "choices": [{
                            "index": 0, "message": message_of(parsed), "logprobs": None, "finish_reason": reason,
                        }],
                        "usage": usage_of(event),
                        "system_fingerprint": None,
                    }).data
                elif isinstance(event, Failed):
                    raise api_error_of(event.error)
        except asyncio.CancelledError:
            await self._log_cancelled()
            raise
        except Exception:  # the view answers it; the engine stops working for nobody
            await self.events.aclose()
            raise
        raise ServerError("the engine ended the request without an answer")

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        chunk = {
            "id": self.log.request_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.spec.id,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def _event_chunks(self, events: list[StreamEvent]) -> Iterator[bytes]:
        for event in events:
            if isinstance(event, ContentDelta):
                yield sse(self._chunk({"content": event.text}))
            else:
                yield sse(self._chunk({"tool_calls": [tool_call_delta(event)]}))

    async def _ended_by(self, error: APIError) -> bytes:
        """The stream's last frame before [DONE]: the error (already in the row), the row
        written first."""
        await self.log.write()
        return sse(body_of(error))

    async def stream(self) -> AsyncIterator[bytes]:
        """SSE: role first, then content and tool-call deltas as they are made, finish,
        usage, [DONE]."""
        try:
            yield sse(self._chunk({"role": "assistant", "content": ""}))
            async for event in self.events:
                if isinstance(event, Delta):
                    self.log.mark_first_token()
                    for chunk in self._event_chunks(self.parser.feed(event.text)):
                        yield chunk
                elif isinstance(event, Finished):
                    for chunk in self._event_chunks(self._close_parser()):
                        yield chunk
                    _, reason = self._finish(event)
                    yield sse(self._chunk({}, reason))
                    if self.include_usage:
                        yield sse({**self._chunk({}), "choices": [], "usage": usage_of(event)})
                    await self.log.write()  # the row exists once the client sees [DONE]
                    yield SSE_DONE
                elif isinstance(event, Failed):
                    error = api_error_of(event.error)
                    self.log.fail(error)
                    yield await self._ended_by(error)
                    yield SSE_DONE
        except Exception as exc:  # a bug mid-stream is an error, not a client that left
            yield await self._ended_by(self.log.fail_unexpected(exc))
            yield SSE_DONE
        finally:
            await self.events.aclose()
            if not self.log.written:  # the client left before [DONE]
                await self._log_cancelled()

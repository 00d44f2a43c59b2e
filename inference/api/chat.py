"""Chat completions: validated request -> engine events -> OpenAI JSON or SSE chunks."""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any, AsyncIterator

from registry.specs import ModelSpec

from ..engine.types import (
    ChatRequest, ContextLengthExceeded, Delta, EngineError, Event, Failed, Finished, Loading,
    ModelLoadError, SamplingParams, Started, UnsupportedContent,
)
from ..models import RequestLog
from .errors import APIError, InvalidRequest, ServerError, ServiceUnavailable, body_of
from .logs import CallLog

SSE_DONE = b"data: [DONE]\n\n"


def build_chat_request(data: dict[str, Any]) -> ChatRequest:
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
    )
    return ChatRequest(messages=data["messages"], params=params, tools=data.get("tools") or None)


def api_error_of(error: EngineError) -> APIError:
    if isinstance(error, ContextLengthExceeded):
        return InvalidRequest(str(error), code=error.code, param="messages")
    if isinstance(error, UnsupportedContent):
        return InvalidRequest(str(error), code=error.code, param=error.details.get("param"))
    if isinstance(error, ModelLoadError):
        return ServiceUnavailable(str(error), code=error.code)
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


class ChatCall:
    """One chat completion in flight: its events, its log row, its response shapes."""

    def __init__(self, *, log: CallLog, spec: ModelSpec, events: AsyncIterator[Event], include_usage: bool):
        self.log = log
        self.spec = spec
        self.events = events
        self.include_usage = include_usage
        self.created = int(time.time())
        self.started: Started | None = None

    async def start(self) -> None:
        """Wait until generation starts, so a failure before it gets a real HTTP status."""
        async for event in self.events:
            if isinstance(event, Loading):
                self.log.set(swapped_from=event.unloaded or "")
            elif isinstance(event, Started):
                self.started = event
                self.log.set(prompt_tokens=event.prompt_tokens, cached_tokens=event.cached_tokens)
                return
            elif isinstance(event, Failed):
                raise api_error_of(event.error)
        raise ServerError("the engine ended the request without an answer")

    def _finish(self, finished: Finished) -> None:
        self.log.set(
            completion_tokens=finished.completion_tokens,
            finish_reason=finished.finish_reason,
            decode_tps=finished.generation_tps or None,
            status_code=200,
            outcome=RequestLog.Outcome.CANCELLED if finished.finish_reason == "cancelled" else RequestLog.Outcome.OK,
        )

    async def complete(self) -> dict[str, Any]:
        """The whole answer as one chat.completion object."""
        parts: list[str] = []
        try:
            async for event in self.events:
                if isinstance(event, Delta):
                    self.log.mark_first_token()
                    parts.append(event.text)
                elif isinstance(event, Finished):
                    self._finish(event)
                    body = {
                        "id": self.log.request_id,
                        "object": "chat.completion",
                        "created": self.created,
                        "model": self.spec.id,
                        "choices": [{
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(parts), "refusal": None},
                            "logprobs": None,
                            "finish_reason": event.finish_reason,
                        }],
                        "usage": usage_of(event),
                        "system_fingerprint": None,
                    }
                    self.log.set(response=body)
                    return body
                elif isinstance(event, Failed):
                    raise api_error_of(event.error)
        except asyncio.CancelledError:
            self.log.set(status_code=499, outcome=RequestLog.Outcome.CANCELLED, response="".join(parts),
                         error="client disconnected")
            await self.log.write()
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

    async def stream(self) -> AsyncIterator[bytes]:
        """SSE: role first, then content deltas as they are made, finish, usage, [DONE]."""
        parts: list[str] = []
        try:
            yield sse(self._chunk({"role": "assistant", "content": ""}))
            async for event in self.events:
                if isinstance(event, Delta):
                    self.log.mark_first_token()
                    parts.append(event.text)
                    yield sse(self._chunk({"content": event.text}))
                elif isinstance(event, Finished):
                    self._finish(event)
                    yield sse(self._chunk({}, event.finish_reason))
                    if self.include_usage:
                        yield sse({**self._chunk({}), "choices": [], "usage": usage_of(event)})
                    yield SSE_DONE
                elif isinstance(event, Failed):
                    error = api_error_of(event.error)
                    self.log.fail(error)
                    yield sse(body_of(error))
                    yield SSE_DONE
        except (asyncio.CancelledError, GeneratorExit):
            self.log.set(status_code=499, outcome=RequestLog.Outcome.CANCELLED, error="client disconnected")
            raise
        finally:
            await self.events.aclose()
            self.log.set(response="".join(parts))
            await self.log.write()

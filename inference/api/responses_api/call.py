"""One Responses API call in flight: the response object of a Generation, whole or as the
typed stream events (`response.created` ... `response.completed`), each with its
`sequence_number`. This class is the dialect's StreamEncoder."""
from __future__ import annotations

import json
import time
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable

from registry.specs import ModelSpec

from ...engine import Finished, JobStream
from ...reasoning import ReasoningDelta, ReasoningFormat
from ...tools import ContentDelta, ToolCall, ToolCallDelta, ToolFormat
from ..chat import logprobs_of
from ..errors import APIError
from ..generation import Generation, GenerationEvent, Outcome
from ..logs import CallLog
from .items import function_call_item, message_item, new_item_id, output_items, output_text, reasoning_item

# Response.error.code is an enum of OpenAI's: the nearest of its values for our errors' statuses.
ERROR_CODES = {429: "rate_limit_exceeded", 400: "invalid_prompt"}

Store = Callable[[dict[str, Any]], Awaitable[None]]


def usage_of(finished: Finished, reasoning_tokens: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": finished.prompt_tokens,
        "input_tokens_details": {"cached_tokens": finished.cached_tokens,
                                 "cache_write_tokens": finished.prompt_tokens - finished.cached_tokens},
        "output_tokens": finished.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": finished.prompt_tokens + finished.completion_tokens,
    }


def status_of(finish_reason: str) -> str:
    return {"length": "incomplete", "cancelled": "cancelled"}.get(finish_reason, "completed")


def sse_event(data: dict[str, Any]) -> bytes:
    """One event as OpenAI writes it: its type on the `event:` line, then the data."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {data['type']}\ndata: {body}\n\n".encode()


class ResponseCall:
    """`request` is the validated request (what the response object echoes back); `store`
    keeps the final object (None: `store: false`), awaited before the client sees the end."""

    def __init__(self, *, log: CallLog, spec: ModelSpec, events: JobStream, request: dict[str, Any],
                 tools: list[dict] | None, tool_format: ToolFormat, reasoning: ReasoningFormat | None,
                 logprobs: bool, store: Store | None):
        self.spec = spec
        self.logprobs = logprobs
        self.request = request
        self.store = store
        self.created_at = int(time.time())
        self.generation = Generation.of(log=log, events=events, tools=tools, tool_format=tool_format,
                                        reasoning=reasoning)
        self.id = log.request_id
        # stream state: the output items so far, the one still open, the next sequence number
        self.sequence = 0
        self.items: list[dict[str, Any]] = []
        self.open: dict[str, Any] | None = None
        self.closing_frames: list[bytes] = []

    async def start(self) -> None:
        await self.generation.start()

    def response(self, status: str, output: list[dict[str, Any]], outcome: Outcome | None = None,
                 error: APIError | None = None) -> dict[str, Any]:
        """The response object in that state; the request's settings as they were applied."""
        request = self.request
        reasoning = request.get("reasoning") or {}
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "completed_at": int(time.time()) if status == "completed" else None,
            "background": False,
            "error": {"code": ERROR_CODES.get(error.status_code, "server_error"), "message": error.message}
            if error else None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": request.get("instructions"),
            "max_output_tokens": request.get("max_output_tokens"),
            "model": self.spec.id,
            "output": output,
            "output_text": output_text(output),
            "parallel_tool_calls": request.get("parallel_tool_calls") is not False,
            "previous_response_id": request.get("previous_response_id"),
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "store": request.get("store") is not False,
            "temperature": 1.0 if request.get("temperature") is None else request["temperature"],
            "text": {"format": (request.get("text") or {}).get("format") or {"type": "text"},
                     "verbosity": (request.get("text") or {}).get("verbosity") or "medium"},
            "tool_choice": request.get("tool_choice") or "auto",
            "tools": [{"strict": True, "description": None, "parameters": None, **tool}
                      for tool in request.get("tools") or []],
            "top_p": 1.0 if request.get("top_p") is None else request["top_p"],
            "truncation": request.get("truncation") or "disabled",
            "metadata": request.get("metadata") or {},
            # not nullable in OpenAI's schema: there once the response is done
            **({"usage": usage_of(outcome.finished, outcome.reasoning_tokens)} if outcome else {}),
            **({"user": request["user"]} if "user" in request else {}),
        }

    def _final(self, outcome: Outcome, output: list[dict[str, Any]]) -> dict[str, Any]:
        return self.response(status_of(outcome.finish_reason), output, outcome)

    async def complete(self) -> dict[str, Any]:
        """The whole answer as one response object (stored first, when `store` is on)."""
        outcome = await self.generation.whole()
        output = output_items(outcome.parsed, status_of(outcome.finish_reason), outcome.reasoning)
        if self.logprobs:  # every generated token's (as chat's choice has them)
            for item in output:
                if item["type"] == "message":
                    item["content"][0]["logprobs"] = logprobs_of(outcome.logprobs)["content"]
        body = self._final(outcome, output)
        if self.store:
            await self.store(body)
        return body

    def stream(self) -> AsyncIterator[bytes]:
        return self.generation.stream(self)

    # --- the stream's items ------------------------------------------------------------------

    def _event(self, kind: str, **fields: Any) -> bytes:
        frame = sse_event({"type": kind, **fields, "sequence_number": self.sequence})
        self.sequence += 1
        return frame

    def _where(self) -> dict[str, Any]:
        """Where the open item is (always the last one)."""
        return {"item_id": self.open["id"], "output_index": len(self.items) - 1}

    def _open(self, item: dict[str, Any]) -> Iterable[bytes]:
        self.items.append(item)
        self.open = item
        yield self._event("response.output_item.added", output_index=len(self.items) - 1,
                          item={**item, "content": []} if item["type"] in ("message", "reasoning") else item)
        if item["type"] == "message":
            yield self._event("response.content_part.added", **self._where(), content_index=0,
                              part=item["content"][0])

    def _close(self, status: str = "completed") -> Iterable[bytes]:
        if self.open is None:
            return
        item, where, self.open = self.open, self._where(), None
        item["status"] = status
        if item["type"] == "message":
            part = item["content"][0]
            yield self._event("response.output_text.done", **where, content_index=0, text=part["text"],
                              logprobs=part["logprobs"])
            yield self._event("response.content_part.done", **where, content_index=0, part=part)
        elif item["type"] == "reasoning":
            yield self._event("response.reasoning_text.done", **where, content_index=0,
                              text=item["content"][0]["text"])
        else:
            yield self._event("response.function_call_arguments.done", **where, name=item["name"],
                              arguments=item["arguments"])
        yield self._event("response.output_item.done", output_index=where["output_index"], item=item)

    # --- StreamEncoder -----------------------------------------------------------------------

    def opening(self) -> Iterable[bytes]:
        shell = self.response("in_progress", [])
        yield self._event("response.created", response=shell)
        yield self._event("response.in_progress", response=shell)

    def _text_logprobs(self, event: GenerationEvent) -> list[dict[str, Any]]:
        """The log probabilities of the tokens since the last event: the text's when it is
        text (those of thinking and calls are not the message's)."""
        if not self.logprobs:
            return []
        taken = self.generation.take_logprobs()
        return logprobs_of(taken)["content"] if isinstance(event, ContentDelta) else []

    def event(self, event: GenerationEvent) -> Iterable[bytes]:
        logprobs = self._text_logprobs(event)
        if isinstance(event, ReasoningDelta):
            if self.open is None or self.open["type"] != "reasoning":
                yield from self._close()
                yield from self._open(reasoning_item(new_item_id("rs"), "", "in_progress"))
            self.open["content"][0]["text"] += event.text
            yield self._event("response.reasoning_text.delta", **self._where(), content_index=0, delta=event.text)
        elif isinstance(event, ContentDelta):
            if self.open is None or self.open["type"] != "message":
                yield from self._close()
                yield from self._open(message_item(new_item_id("msg"), "", "in_progress"))
            part = self.open["content"][0]
            part["text"] += event.text
            part["logprobs"] += logprobs
            yield self._event("response.output_text.delta", **self._where(), content_index=0,
                              delta=event.text, logprobs=logprobs)
        elif isinstance(event, ToolCallDelta):
            if event.id is not None:
                yield from self._close()
                call = ToolCall(id=event.id, name=event.name or "", arguments="")
                yield from self._open(function_call_item(new_item_id("fc"), call, "in_progress"))
            if event.arguments:
                self.open["arguments"] += event.arguments
                yield self._event("response.function_call_arguments.delta", **self._where(), delta=event.arguments)

    async def settle(self, outcome: Outcome) -> None:
        """Close the open item, build the final object from the items as streamed and store
        it, all before the client sees `response.completed` and may continue from it."""
        status = status_of(outcome.finish_reason)
        frames = list(self._close("incomplete" if status == "incomplete" else "completed"))
        if not self.items:  # nothing was said: an empty message, as a whole answer has
            frames += [*self._open(message_item(new_item_id("msg"), "", "in_progress")), *self._close(status)]
        body = self._final(outcome, self.items)
        if self.store and status != "cancelled":
            await self.store(body)
        kind = "response.incomplete" if status == "incomplete" else "response.completed"
        self.closing_frames = [*frames, self._event(kind, response=body)]

    def closing(self, outcome: Outcome) -> Iterable[bytes]:
        return self.closing_frames

    def error(self, error: APIError) -> Iterable[bytes]:
        yield self._event("error", code=error.code, message=error.message, param=error.param)
        yield self._event("response.failed", response=self.response("failed", self.items, error=error))

    def end(self) -> Iterable[bytes]:
        return ()

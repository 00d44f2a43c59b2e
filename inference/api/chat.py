"""Chat completions: validated request -> engine events -> OpenAI JSON or SSE chunks."""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from functools import cache
from importlib.metadata import version
from typing import Any, AsyncIterator, Iterable

from registry.specs import ModelSpec

from ..constraints import ConstraintError, build_grammar
from ..engine import ChatRequest, Finished, JobStream, SamplingParams
from ..engine.logprobs import TokenLogprob
from ..images import LoadedImage
from ..reasoning import ReasoningDelta, ReasoningFormat
from ..tools import ContentDelta, ToolCallDelta, ToolFormat
from .errors import APIError, InvalidRequest, body_of
from .generation import Choice, Choices, Generation, GenerationEvent, Outcome, logged_message
from .logs import CallLog
from .responses import ChatCompletionResponseSerializer

SSE_DONE = b"data: [DONE]\n\n"


def choice_requests(request: ChatRequest, n: int) -> list[ChatRequest]:
    """One engine request per choice; with a seed, choice i samples with seed + i (distinct
    choices, each reproducible)."""
    seed = request.params.seed
    if n == 1 or seed is None:
        return [request] * n
    return [replace(request, params=replace(request.params, seed=seed + i)) for i in range(n)]


def template_kwargs_of(data: dict[str, Any]) -> dict[str, Any]:
    """The chat template's extra variables: `chat_template_kwargs` as given (enable_thinking...),
    and `reasoning_effort`, which templates that know it read under that name."""
    kwargs = dict(data.get("chat_template_kwargs") or {})
    if data.get("reasoning_effort") is not None:
        kwargs.setdefault("reasoning_effort", data["reasoning_effort"])
    return kwargs


def sampling_params(data: dict[str, Any], *, grammar: str | None = None,
                    logprobs: int | None = None) -> SamplingParams:
    """The engine's sampling parameters of a validated OpenAI request (chat or completions);
    `logprobs`: how many rivals each token lists (None: no log probabilities)."""
    temperature = data.get("temperature")
    top_p = data.get("top_p")
    if top_p == 0:  # only the most likely token survives: greedy
        temperature = 0.0
    return SamplingParams(
        max_tokens=data.get("max_completion_tokens") or data.get("max_tokens"),
        temperature=1.0 if temperature is None else temperature,
        top_p=1.0 if not top_p else top_p,
        top_k=data.get("top_k") or 0,
        fit_max_tokens=bool(data.get("fit_max_tokens")),
        stop=data.get("stop") or (),
        seed=data.get("seed"),
        presence_penalty=data.get("presence_penalty") or 0.0,
        frequency_penalty=data.get("frequency_penalty") or 0.0,
        logit_bias=data.get("logit_bias") or {},
        grammar=grammar,
        logprobs=logprobs,
    )


def build_chat_request(data: dict[str, Any], *, tool_format: ToolFormat,
                       images: list[LoadedImage] | None = None,
                       reasoning: ReasoningFormat | None = None) -> ChatRequest:
    """The engine's request; `tool_format` (the model's) is the syntax a forced call takes;
    `images`: the messages' decoded images, in prompt order; `reasoning` (the model's format):
    a grammar lets the thinking block come first and constrains the answer after it."""
    tools = data.get("tools") or None
    if data.get("tool_choice") == "none":
        tools = None  # the model is not told about them, so it cannot call them
    try:
        grammar = build_grammar(
            response_format=data.get("response_format"), tools=tools, tool_choice=data.get("tool_choice"),
            # A named function is one call of it (a model left to repeat it would, to max_tokens).
            parallel_tool_calls=data.get("parallel_tool_calls") is not False
            and not isinstance(data.get("tool_choice"), dict), tool_format=tool_format,
            reasoning=reasoning,
        )
    except ConstraintError as exc:
        raise InvalidRequest(str(exc), param=exc.param) from None
    params = sampling_params(data, grammar=grammar,
                             logprobs=(data.get("top_logprobs") or 0) if data.get("logprobs") else None)
    return ChatRequest(messages=data["messages"], params=params, tools=tools, images=images or [],
                       template_kwargs=template_kwargs_of(data), keep_alive=data.get("keep_alive"))


@cache
def system_fingerprint(spec: ModelSpec) -> str:
    """OpenAI's `system_fingerprint` (a string, never null): what answers may differ by even at
    a fixed seed, here the model entry and the MLX version, hashed (it changes when either does)."""
    facts = f"{spec.id}|{spec.source}|{spec.backend}|mlx {version('mlx')}"
    return "fp_" + hashlib.sha256(facts.encode()).hexdigest()[:10]


def sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def usage_of(finished: Finished, reasoning_tokens: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": finished.prompt_tokens,
        "completion_tokens": finished.completion_tokens,
        "total_tokens": finished.prompt_tokens + finished.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": finished.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
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


def message_of(outcome: Outcome) -> dict[str, Any]:
    """The assistant message; the thinking under both names clients read it by."""
    message = {**logged_message(outcome.parsed, outcome.reasoning), "refusal": None}
    if outcome.reasoning:
        message["reasoning"] = outcome.reasoning
    return message


def logprob_entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}


def logprobs_of(entries: Iterable[TokenLogprob]) -> dict[str, Any]:
    """OpenAI's `choices[i].logprobs`: every generated token's, with its `top_logprobs`."""
    return {"content": [{**logprob_entry(e.token, e.logprob),
                         "top_logprobs": [logprob_entry(t, lp) for t, lp in e.top]} for e in entries],
            "refusal": None}


class ChatCall:
    """One chat completion in flight: the OpenAI shapes of a Generation, whole or as
    `chat.completion.chunk` frames (this class is the chat dialect's StreamEncoder)."""

    def __init__(self, *, log: CallLog, spec: ModelSpec, events: list[JobStream], include_usage: bool,
                 tools: list[dict] | None, tool_format: ToolFormat, reasoning: ReasoningFormat | None = None,
                 logprobs: bool = False):
        """`events`: one job's per choice (n)."""
        self.spec = spec
        self.include_usage = include_usage
        self.logprobs = logprobs
        self.created = int(time.time())
        shared = {"tools": tools, "tool_format": tool_format, "reasoning": reasoning}
        self.generation = (Generation.of(log=log, events=events[0], **shared) if len(events) == 1
                           else Choices.of(log=log, streams=events, **shared))
        self.id = log.request_id

    async def start(self) -> None:
        await self.generation.start()

    async def complete(self) -> dict[str, Any]:
        """The whole answer as one chat.completion object."""
        outcome = await self.generation.whole()
        return ChatCompletionResponseSerializer({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.spec.id,
            "choices": [{
                "index": index, "message": message_of(choice),
                "logprobs": logprobs_of(choice.logprobs) if self.logprobs else None,
                "finish_reason": choice.finish_reason,
            } for index, choice in enumerate(outcome.choices or (outcome,))],
            "usage": usage_of(outcome.finished, outcome.reasoning_tokens),
            "system_fingerprint": system_fingerprint(self.spec),
        }).data

    def stream(self) -> AsyncIterator[bytes]:
        """SSE: role first, then reasoning, content and tool-call deltas as they are made, finish,
        usage, [DONE]."""
        return self.generation.stream(self)

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None, *,
               scored: bool = False, index: int = 0) -> dict[str, Any]:
        """`scored`: this frame carries the log probabilities of choice `index`'s tokens not yet sent."""
        generation = self.generation.generations[index] if isinstance(self.generation, Choices) else self.generation
        logprobs = logprobs_of(generation.take_logprobs()) if scored and self.logprobs else None
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.spec.id,
            "system_fingerprint": system_fingerprint(self.spec),
            "choices": [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    # --- StreamEncoder ---------------------------------------------------------------------

    def opening(self) -> Iterable[bytes]:
        choices = len(self.generation.generations) if isinstance(self.generation, Choices) else 1
        for index in range(choices):
            yield sse(self._chunk({"role": "assistant", "content": ""}, index=index))

    def event(self, event: GenerationEvent | Choice, index: int = 0) -> Iterable[bytes]:
        if isinstance(event, Choice):  # n > 1: each choice ends with its own finish chunk
            if isinstance(event.item, Outcome):
                yield sse(self._chunk({}, event.item.finish_reason, scored=True, index=event.index))
            else:
                yield from self.event(event.item, event.index)
        elif isinstance(event, ReasoningDelta):
            yield sse(self._chunk({"reasoning_content": event.text, "reasoning": event.text}, scored=True,
                                  index=index))
        elif isinstance(event, ContentDelta):
            yield sse(self._chunk({"content": event.text}, scored=True, index=index))
        else:
            yield sse(self._chunk({"tool_calls": [tool_call_delta(event)]}, scored=True, index=index))

    async def settle(self, outcome: Outcome) -> None:
        """Nothing to do before the end: a chat completion is not kept."""

    def closing(self, outcome: Outcome) -> Iterable[bytes]:
        if not outcome.choices:  # n > 1: the choices' finish chunks are written
            yield sse(self._chunk({}, outcome.finish_reason, scored=True))
        if self.include_usage:
            yield sse({**self._chunk({}), "choices": [], "usage": usage_of(outcome.finished, outcome.reasoning_tokens)})

    def error(self, error: APIError) -> Iterable[bytes]:
        yield sse(body_of(error))

    def end(self) -> Iterable[bytes]:
        yield SSE_DONE

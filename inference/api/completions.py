"""Legacy completions: validated request -> one engine job per prompt and choice (raw prompts,
no chat template; `suffix` is fill-in-the-middle, laid out by the backend) -> OpenAI's
`text_completion` JSON or SSE chunks.

The jobs run through the same Generation (and Choices, for several) as chat, so stops,
cancellation, the prefix cache and the log row are chat's. A legacy `logprobs` object is the
engine's per-token log probabilities written the old way: tokens, token_logprobs, top_logprobs
as {token: logprob} dicts and each token's text_offset (counted from the echoed prompt's start).
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, AsyncIterator, Iterable

from registry.specs import ModelSpec

from ..engine import ChatRequest, JobStream, RawPrompt
from ..engine.logprobs import TokenLogprob
from ..tools import ContentDelta, ToolFormat
from .chat import SSE_DONE, choice_requests, sampling_params, sse, system_fingerprint, usage_of
from .errors import APIError, body_of
from .generation import Choice, Choices, Generation, GenerationEvent, Outcome
from .logs import CallLog


def completion_requests(data: dict[str, Any]) -> list[ChatRequest]:
    """The engine requests, prompt after prompt and each prompt's n choices in turn (OpenAI's
    choice index is prompt * n + choice)."""
    params = sampling_params(data, logprobs=data.get("logprobs"))
    suffix = data.get("suffix")
    return [one for prompt in data["prompt"]
            for one in choice_requests(ChatRequest(messages=[], params=params, raw=RawPrompt(prompt, suffix)),
                                       data.get("n") or 1)]


def legacy_logprobs(entries: list[TokenLogprob], offset: int) -> dict[str, Any]:
    """The integer-`logprobs` form of these tokens; `offset`: where the first one starts in the
    choice's text."""
    offsets = []
    for entry in entries:
        offsets.append(offset)
        offset += len(entry.token)
    return {"tokens": [e.token for e in entries], "token_logprobs": [e.logprob for e in entries],
            "top_logprobs": [dict(e.top) for e in entries], "text_offset": offsets}


class CompletionCall:
    """One completions request in flight: its choices whole, or as `text_completion` chunks
    (this class is the legacy dialect's StreamEncoder)."""

    def __init__(self, *, log: CallLog, spec: ModelSpec, data: dict[str, Any], events: list[JobStream],
                 tool_format: ToolFormat):
        """`events`: one job's per choice, in choice order."""
        self.spec = spec
        self.id = log.request_id
        self.created = int(time.time())
        self.log = log
        self.n = data.get("n") or 1
        self.logprobs = data.get("logprobs") is not None
        self.include_usage = bool((data.get("stream_options") or {}).get("include_usage"))
        # What each choice's text starts with: its prompt, when echoed.
        self.echoed = [prompt if data.get("echo") else "" for prompt in data["prompt"] for _ in range(self.n)]
        self.offsets = [len(text) for text in self.echoed]  # where each choice's next text begins
        shared = {"tools": None, "tool_format": tool_format}
        self.generation = (Generation.of(log=log, events=events[0], **shared) if len(events) == 1
                           else Choices.of(log=log, streams=events, **shared))

    async def start(self) -> None:
        await self.generation.start()

    def _usage(self, outcome: Outcome) -> dict[str, Any]:
        """Every prompt's tokens once (its first choice's count) and every choice's completion."""
        finished = outcome.finished
        if outcome.choices:
            prompt_tokens = sum(o.finished.prompt_tokens for o in outcome.choices[::self.n])
            self.log.set(prompt_tokens=prompt_tokens)
            finished = replace(finished, prompt_tokens=prompt_tokens)
        return usage_of(finished)

    def _logprobs(self, index: int, entries: list[TokenLogprob]) -> dict[str, Any] | None:
        if not self.logprobs:
            return None
        scored = legacy_logprobs(entries, self.offsets[index])
        self.offsets[index] += sum(len(t) for t in scored["tokens"])
        return scored

    async def complete(self) -> dict[str, Any]:
        """The whole answer as one text_completion object."""
        outcome = await self.generation.whole()
        choices = []
        for index, choice in enumerate(outcome.choices or (outcome,)):
            choices.append({"text": self.echoed[index] + choice.parsed.content, "index": index,
                            "logprobs": self._logprobs(index, list(choice.logprobs)),
                            "finish_reason": choice.finish_reason})
        return {**self._chunk([]), "choices": choices, "usage": self._usage(outcome)}

    def stream(self) -> AsyncIterator[bytes]:
        """SSE: the echoed prompts, then text as it is made, each choice's finish, usage, [DONE]."""
        return self.generation.stream(self)

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.id, "object": "text_completion", "created": self.created, "model": self.spec.id,
                "system_fingerprint": system_fingerprint(self.spec), "choices": choices}

    def _frame(self, index: int, text: str, finish_reason: str | None = None) -> bytes:
        """A chunk of choice `index`'s text, with the log probabilities of its tokens not yet sent."""
        generation = self.generation.generations[index] if isinstance(self.generation, Choices) else self.generation
        choice = {"text": text, "index": index, "logprobs": self._logprobs(index, generation.take_logprobs()),
                  "finish_reason": finish_reason}
        return sse({**self._chunk([choice]), **({"usage": None} if self.include_usage else {})})

    # --- StreamEncoder ---------------------------------------------------------------------

    def opening(self) -> Iterable[bytes]:
        for index, text in enumerate(self.echoed):
            if text:
                yield self._frame(index, text)

    def event(self, event: GenerationEvent | Choice, index: int = 0) -> Iterable[bytes]:
        if isinstance(event, Choice):  # several choices: each ends with its own finish chunk
            if isinstance(event.item, Outcome):
                yield self._frame(event.index, "", event.item.finish_reason)
            else:
                yield from self.event(event.item, event.index)
        elif isinstance(event, ContentDelta):
            yield self._frame(index, event.text)

    async def settle(self, outcome: Outcome) -> None:
        """Nothing to do before the end: a completion is not kept."""

    def closing(self, outcome: Outcome) -> Iterable[bytes]:
        if not outcome.choices:  # several choices: their finish chunks are written
            yield self._frame(0, "", outcome.finish_reason)
        if self.include_usage:
            yield sse({**self._chunk([]), "usage": self._usage(outcome)})

    def error(self, error: APIError) -> Iterable[bytes]:
        yield sse(body_of(error))

    def end(self) -> Iterable[bytes]:
        yield SSE_DONE

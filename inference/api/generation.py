"""One engine job as every API dialect consumes it.

Chat completions, the Responses API and Anthropic's Messages differ only in their request
shapes and in how they write events down (JSON or SSE, their own names). What happens between
the engine and those shapes is the same for all of them and lives here, once: wait for the
start so a failure before it gets a real HTTP status; split a thinking model's output into its
reasoning (`ReasoningDelta`, inference/reasoning.py) and its answer, and cut the answer into
content and tool-call events with the model's tool parser (so streamed and whole answers cannot
disagree, and no thinking ever reaches content or a tool call); fill the
request's log row at the end; log a client that leaves as cancelled, with what was made.

A dialect writes a `StreamEncoder` (its frames) and calls `Generation.whole()` or
`Generation.stream(encoder)`.
"""
from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, replace
from typing import Any, AsyncIterator, Iterable, Protocol

from ..engine.logprobs import TokenLogprob
from ..engine import (
    ContextLengthExceeded, Delta, EngineError, Failed, Finished, ImagesNotPrepared, JobStream, Loading,
    ModelLoadError, QueueFull, Started, UnsupportedContent,
)
from ..models import RequestLog
from ..reasoning import ReasoningDelta, ReasoningFormat, ReasoningSplitter
from ..tools import ParsedOutput, StreamEvent, StreamParser, ToolFormat
from ..tools.base import PassthroughParser
from .errors import APIError, InvalidRequest, ServerError, ServiceUnavailable
from .errors import QueueFull as TooManyWaiting
from .logs import CallLog


def api_error_of(error: EngineError) -> APIError:
    """The HTTP error of an engine error; each dialect writes it in its own shape."""
    if isinstance(error, ContextLengthExceeded):
        return InvalidRequest(str(error), code=error.code, param=error.details.get("param", "messages"))
    if isinstance(error, (UnsupportedContent, ImagesNotPrepared)):
        return InvalidRequest(str(error), code=error.code, param=error.details.get("param"))
    if isinstance(error, ModelLoadError):
        return ServiceUnavailable(str(error), code=error.code)
    if isinstance(error, QueueFull):
        return TooManyWaiting(str(error), retry_after=error.details["retry_after"])
    return ServerError(str(error), code=error.code)


# What a dialect's encoder is given as the answer comes: thinking, content, tool-call deltas.
GenerationEvent = ReasoningDelta | StreamEvent


def logged_message(parsed: ParsedOutput, reasoning: str = "") -> dict[str, Any]:
    """The answer as the log row keeps it, whatever the dialect: an OpenAI assistant message
    (with the thinking as `reasoning_content`, when there was some)."""
    message: dict[str, Any] = {"role": "assistant", "content": parsed.content}
    if reasoning:
        message["reasoning_content"] = reasoning
    if parsed.calls:
        message["content"] = parsed.content or None
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in parsed.calls
        ]
    return message


@dataclass(frozen=True)
class Outcome:
    """How a generation ended: the parsed answer, the finish reason a client sees (`stop`
    becomes `tool_calls` when calls were parsed), the engine's counts, and the thinking (the
    whole reasoning text, and the generated tokens that went into it)."""

    parsed: ParsedOutput
    finish_reason: str  # stop | length | tool_calls | cancelled
    finished: Finished
    reasoning: str = ""
    reasoning_tokens: int = 0
    logprobs: tuple[TokenLogprob, ...] = ()
    choices: tuple[Outcome, ...] = ()  # n > 1 (Choices): each choice's own; the fields above are the first's


class StreamEncoder(Protocol):
    """A dialect's stream frames (bytes on the wire) for each moment of a generation."""

    def opening(self) -> Iterable[bytes]:
        """Before the first token (role chunk, message_start, response.created...)."""

    def event(self, event: GenerationEvent) -> Iterable[bytes]:
        """A reasoning, content or tool-call delta."""

    async def settle(self, outcome: Outcome) -> None:
        """What must be done before the client sees the end, such as storing the answer a
        client may continue from at once (the Responses API); `closing` follows."""

    def closing(self, outcome: Outcome) -> Iterable[bytes]:
        """The end, before the log row is written."""

    def error(self, error: APIError) -> Iterable[bytes]:
        """A failure mid-stream (the row already says so)."""

    def end(self) -> Iterable[bytes]:
        """The very last frames, after the row is written (e.g. `data: [DONE]`)."""


class Generation:
    """One job's events turned into reasoning, content, tool calls and an Outcome, logged once."""

    def __init__(self, *, log: CallLog, events: JobStream, parser: StreamParser,
                 reasoning: ReasoningFormat | None = None):
        self.log = log
        self.events = events
        self.parser = parser
        self.started: Started | None = None  # the prompt's counts, once generation starts
        self.reasoning = reasoning
        self.splitter: ReasoningSplitter | None = None  # made at the start: the prompt says how
        self.reasoning_tokens = 0
        self.logprobs: list[TokenLogprob] = []  # every token's, when the request asked
        self._unsent = 0  # how many of them no frame has carried yet (take_logprobs)
        self._closed = False

    @classmethod
    def of(cls, *, log: CallLog, events: JobStream, tools: list[dict] | None,
           tool_format: ToolFormat, reasoning: ReasoningFormat | None = None) -> Generation:
        """With tools, the model's tool parser; without, text passes through untouched; with a
        reasoning format (the model's), its thinking is split off first."""
        parser = tool_format.stream_parser(tools) if tools else PassthroughParser()
        return cls(log=log, events=events, parser=parser, reasoning=reasoning)

    def _begin(self, opens_reasoning: bool) -> None:
        if self.reasoning is not None and self.splitter is None:
            self.splitter = self.reasoning.splitter(opens_reasoning)

    def _answer(self, pieces: list[ReasoningDelta | str]) -> list[GenerationEvent]:
        """Thinking as it is; answer text through the tool parser."""
        out: list[GenerationEvent] = []
        for piece in pieces:
            if isinstance(piece, ReasoningDelta):
                out.append(piece)
            else:
                out.extend(self.parser.feed(piece))
        return out

    def take_logprobs(self) -> list[TokenLogprob]:
        """The log probabilities of the tokens since the last call: a streamed frame carries
        those of the text it writes (and of any held back before it)."""
        taken = self.logprobs[self._unsent:]
        self._unsent = len(self.logprobs)
        return taken

    def _feed(self, delta: Delta) -> list[GenerationEvent]:
        self.logprobs.extend(delta.logprobs)
        splitter = self.splitter
        if splitter is None:
            return self.parser.feed(delta.text)
        was_thinking = splitter.thinking
        pieces = splitter.feed(delta.text)
        if was_thinking or splitter.thinking:  # the tokens of a delta that crossed a tag count as thinking
            self.reasoning_tokens += delta.tokens
        return self._answer(pieces)

    @property
    def reasoning_text(self) -> str:
        return self.splitter.reasoning if self.splitter is not None else ""

    def _close_parser(self, cut: bool = False) -> list[GenerationEvent]:
        """Flush the splitter and the parser once (at the end, or when the client leaves);
        `cut`: max_tokens ended it, so a call block left open is a call cut short."""
        if self._closed:
            return []
        self._closed = True
        held = self._answer(self.splitter.finish()) if self.splitter is not None else []
        return [*held, *self.parser.finish(cut=cut)]

    @contextlib.asynccontextmanager
    async def _settled_if_left(self) -> AsyncIterator[None]:
        """Waiting on the engine: a client that leaves is logged as cancelled; any other
        failure closes the job (the view answers it; the engine stops working for nobody)."""
        try:
            yield
        except asyncio.CancelledError as cancel:  # the client left (in the queue, a load, or the answer)
            await self.log_cancelled(cancel)
            raise
        except Exception:
            await self.events.aclose()
            raise

    async def start(self) -> None:
        """Wait until generation starts, so a failure before it gets a real HTTP status."""
        async with self._settled_if_left():
            async for event in self.events:
                if isinstance(event, Loading):
                    self.log.set(swapped_from=event.unloaded or "")
                elif isinstance(event, Started):
                    self.started = event
                    self.log.set(prompt_tokens=event.prompt_tokens, cached_tokens=event.cached_tokens)
                    self._begin(event.opens_reasoning)
                    return
                elif isinstance(event, Failed):
                    raise api_error_of(event.error)
        raise ServerError("the engine ended the request without an answer")

    async def log_cancelled(self, cancel: BaseException | None = None) -> None:
        """The client left (or the server, shutting down, cancelled the request with its reason
        as the cancellation's message): the row says so, with what was made until the engine
        stopped."""
        self._close_parser()
        reason = cancel.args[0] if cancel is not None and cancel.args else "client disconnected"
        self.log.set(status_code=499, outcome=RequestLog.Outcome.CANCELLED, finish_reason="cancelled",
                     completion_tokens=self.events.generated, error=str(reason))
        if "response" not in self.log.fields:
            self.log.set(response=logged_message(self.parser.result(), self.reasoning_text))
        await self.log.write()

    def _finish(self, finished: Finished) -> Outcome:
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
            response=logged_message(parsed, self.reasoning_text),
        )
        return Outcome(parsed=parsed, finish_reason=reason, finished=finished,
                       reasoning=self.reasoning_text, reasoning_tokens=self.reasoning_tokens,
                       logprobs=tuple(self.logprobs))

    async def outputs(self) -> AsyncIterator[GenerationEvent | Outcome]:
        """Reasoning, content and tool-call events as the text comes, then the Outcome; the
        engine's failure is raised as its APIError."""
        self._begin(False)  # a caller that skipped start(): the prompt opened nothing we know of
        async for event in self.events:
            if isinstance(event, Delta):
                self.log.mark_first_token()
                for item in self._feed(event):
                    yield item
            elif isinstance(event, Finished):
                for item in self._close_parser(cut=event.finish_reason == "length"):
                    yield item
                yield self._finish(event)
                return
            elif isinstance(event, Failed):
                raise api_error_of(event.error)
        raise ServerError("the engine ended the request without an answer")

    async def whole(self) -> Outcome:
        """The whole answer, for a response that is not streamed."""
        async with self._settled_if_left():
            async for item in self.outputs():
                if isinstance(item, Outcome):
                    return item
        raise ServerError("the engine ended the request without an answer")

    async def _ended_by(self, error: APIError, encoder: StreamEncoder) -> list[bytes]:
        """A failure's frames, the row (already failed) written first."""
        await self.log.write()
        return [*encoder.error(error), *encoder.end()]

    async def stream(self, encoder: StreamEncoder) -> AsyncIterator[bytes]:
        """The dialect's frames as the answer is made; the row is written before the last
        frame, so it exists once the client has seen the end."""
        cancel: BaseException | None = None
        try:
            for frame in encoder.opening():
                yield frame
            async for item in self.outputs():
                if isinstance(item, Outcome):
                    await encoder.settle(item)
                frames = encoder.closing(item) if isinstance(item, Outcome) else encoder.event(item)
                for frame in frames:
                    yield frame
            await self.log.write()
            for frame in encoder.end():
                yield frame
        except APIError as error:  # the engine failed mid-stream
            self.log.fail(error)
            for frame in await self._ended_by(error, encoder):
                yield frame
        except Exception as exc:  # a bug mid-stream is an error, not a client that left
            for frame in await self._ended_by(self.log.fail_unexpected(exc), encoder):
                yield frame
        except asyncio.CancelledError as cancelled:
            cancel = cancelled
            raise
        finally:
            await self.events.aclose()
            if not self.log.written:  # the client left before the end
                await self.log_cancelled(cancel)


@dataclass(frozen=True)
class Choice:
    """An event or the Outcome of choice `index` of several (n > 1), for the encoder to write
    under that index."""

    index: int
    item: GenerationEvent | Outcome


class JobStreams:
    """Several jobs' event streams, closed together."""

    def __init__(self, streams: list[JobStream]):
        self.streams = streams

    @property
    def generated(self) -> int:
        return sum(stream.generated for stream in self.streams)

    async def aclose(self) -> None:
        for stream in self.streams:
            await stream.aclose()


class Choices(Generation):
    """n answers to one request, one engine job each: the engine decodes them together where
    the backend batches, else one after another. Their events come choice after choice (each
    as a `Choice`), then one Outcome whose counts are summed (the prompt counted once), in one
    log row: the first choice's answer, every choice's tokens."""

    def __init__(self, generations: list[Generation]):
        first = generations[0]
        super().__init__(log=first.log, events=JobStreams([g.events for g in generations]), parser=first.parser)
        self.generations = generations

    @classmethod
    def of(cls, *, log: CallLog, streams: list[JobStream], **kwargs: Any) -> Choices:
        """A Generation per stream; choices after the first keep their fields in a row that is
        never written."""
        return cls([Generation.of(log=log if i == 0 else CallLog(log.request, log.request_id),
                                  events=events, **kwargs) for i, events in enumerate(streams)])

    async def start(self) -> None:
        for generation in self.generations:
            await generation.start()

    async def outputs(self) -> AsyncIterator[Choice | Outcome]:
        outcomes: list[Outcome] = []
        for index, generation in enumerate(self.generations):
            async for item in generation.outputs():
                if isinstance(item, Outcome):
                    outcomes.append(item)
                yield Choice(index, item)
        first = outcomes[0]
        completion = sum(o.finished.completion_tokens for o in outcomes)
        self.log.set(completion_tokens=completion)
        yield replace(first, finished=replace(first.finished, completion_tokens=completion),
                      reasoning_tokens=sum(o.reasoning_tokens for o in outcomes), choices=tuple(outcomes))

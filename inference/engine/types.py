"""Plain request and event objects passed between the API layer and the engine, and every
error the engine reports.

The engine knows no HTTP: the view turns a validated request into a ChatRequest and the
events back into JSON or SSE.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..images import LoadedImage
    from .logprobs import TokenLogprob


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int | None = None  # None: what the context leaves, capped by a setting
    # max_tokens as a ceiling, cut to what the context leaves (not a 400 past it): Claude Code
    # asks for its own models' output limit (32,000) whatever model it talks to.
    fit_max_tokens: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0: no cut (Anthropic's top_k; OpenAI has none)
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    grammar: str | None = None  # llguidance grammar the output must follow (inference/constraints)
    logprobs: int | None = None  # None: none; n >= 0: each token's log probability and its n best rivals


@dataclass(frozen=True)
class RawPrompt:
    """A legacy completions prompt: text (or the model's own token ids) the model continues as
    is, no chat template; with `suffix`, fill-in-the-middle in the model's FIM tokens (fim.py)."""

    prompt: str | list[int]
    suffix: str | None = None


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict[str, Any]]
    params: SamplingParams = SamplingParams()
    tools: list[dict[str, Any]] | None = None
    # The decoded images of the messages' image_url parts, in prompt order (loaded by the API
    # layer off the event loop, so the worker never waits on a URL).
    images: list[LoadedImage] = field(default_factory=list)
    count_only: bool = False  # render and count the prompt, generate nothing (token counting)
    # Extra variables for the chat template (the request's chat_template_kwargs, e.g.
    # enable_thinking, and its reasoning_effort).
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    # Seconds the model stays loaded after this request (Ollama's keep_alive): 0 unloads it
    # when the request ends, a negative value keeps it for ever; None: its spec's TTL.
    keep_alive: float | None = None
    raw: RawPrompt | None = None  # a completions prompt in place of the messages (no template)


@dataclass(frozen=True)
class EmbedRequest:
    """Inputs for an embedding model: texts, or token ids of the model's own tokenizer."""

    inputs: list[str | list[int]]
    dimensions: int | None = None  # None: the model's own size
    truncate: bool = False  # cut inputs longer than the context instead of refusing them


# --- events, in the order a job emits them -------------------------------------------


@dataclass(frozen=True)
class Loading:
    """The requested model is not resident: it is being loaded (after unloading another)."""

    unloaded: str | None


@dataclass(frozen=True)
class Started:
    """The prompt is rendered and fits; generation begins."""

    prompt_tokens: int
    cached_tokens: int = 0  # prompt tokens whose KV state came from the prompt cache
    opens_reasoning: bool = False  # the prompt ends inside the model's thinking block (reasoning.py)


@dataclass(frozen=True)
class Delta:
    """New text, and how many generated tokens it took (those since the last Delta), with
    their log probabilities when the request asked (engine/logprobs.py)."""

    text: str
    tokens: int = 1
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class Finished:
    finish_reason: str  # stop | length | cancelled
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    generation_tps: float = 0.0
    stop_sequence: str | None = None  # the stop string that ended it, if one did


@dataclass(frozen=True)
class Embedded:
    """An embedding job's one answer: (inputs, dimensions) float32 vectors, in input order."""

    vectors: Any  # numpy.ndarray: the engine's only answer that is not text
    prompt_tokens: int


class EngineError(Exception):
    """A request the engine cannot serve; `code` tells the API layer which error it is."""

    code = "engine_error"

    def __init__(self, message: str, **details: Any):
        super().__init__(message)
        self.details = details


class ModelLoadError(EngineError):
    code = "model_load_failed"


class InsufficientMemory(ModelLoadError):
    """The model would not fit in what the budget or the device can give, even after every
    model that may be evicted is; `details` holds the numbers (bytes)."""

    code = "insufficient_memory"


class RankLost(ModelLoadError):
    """A rank of the distributed group serving the model is gone (engine/lockstep.py): nothing
    of that model can be generated until every rank is restarted."""

    code = "distributed_rank_lost"


class ContextLengthExceeded(EngineError):
    code = "context_length_exceeded"


class UnsupportedContent(EngineError):
    code = "unsupported_content"


class ImagesNotPrepared(EngineError):
    """The model's processor refused the request's (already decoded) images, e.g. an aspect
    ratio it cannot tile; `details["param"]` names the first image part."""

    code = "invalid_image"


class QueueFull(EngineError):
    """More requests wait than the engine's bound allows; `details["retry_after"]` guesses, in
    whole seconds, when a place frees up (one job's usual duration)."""

    code = "queue_full"


@dataclass(frozen=True)
class Failed:
    error: EngineError


Event = Loading | Started | Delta | Finished | Embedded | Failed

"""Plain request and event objects passed between the API layer and the engine.

The engine knows no HTTP: the view turns a validated request into a ChatRequest and the
events back into JSON or SSE.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int | None = None  # None: what the context leaves, capped by a setting
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    grammar: str | None = None  # llguidance grammar the output must follow (inference/constraints)


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict[str, Any]]
    params: SamplingParams = SamplingParams()
    tools: list[dict[str, Any]] | None = None


# --- events, in the order a job emits them -------------------------------------------


@dataclass(frozen=True)
class Loading:
    """The requested model is not resident: it is being loaded (after unloading another)."""

    model_id: str
    unloaded: str | None


@dataclass(frozen=True)
class Started:
    """The prompt is rendered and fits; generation begins."""

    prompt_tokens: int
    max_tokens: int
    cached_tokens: int = 0  # prompt tokens whose KV state came from the prompt cache


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Finished:
    finish_reason: str  # stop | length | cancelled
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    prompt_tps: float = 0.0
    generation_tps: float = 0.0


class EngineError(Exception):
    """A request the engine cannot serve; `code` tells the API layer which error it is."""

    code = "engine_error"

    def __init__(self, message: str, **details: Any):
        super().__init__(message)
        self.details = details


class ModelLoadError(EngineError):
    code = "model_load_failed"


class ContextLengthExceeded(EngineError):
    code = "context_length_exceeded"


class UnsupportedContent(EngineError):
    code = "unsupported_content"


class InvalidImage(EngineError):
    """An image part that cannot be used: bad data, not an image, too large, unreachable or
    refused URL; `details["param"]` names the part (messages[i].content[j])."""

    code = "invalid_image"


@dataclass(frozen=True)
class Failed:
    error: EngineError


Event = Loading | Started | Delta | Finished | Failed

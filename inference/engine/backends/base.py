"""What the engine needs from a loaded model, whichever library runs it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol

from registry.specs import ModelSpec

from ..types import SamplingParams


@dataclass(frozen=True)
class Step:
    """One generated token: its text segment (may be empty mid-character) and counters."""

    text: str
    token: int
    generated: int  # tokens generated so far, this one included
    finish_reason: str | None  # set on the last step: stop (end of sequence) | length
    prompt_tps: float = 0.0
    generation_tps: float = 0.0


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt: its tokens, what else identifies it, what else the model needs."""

    tokens: list[int]
    cache_key: tuple[str, ...] = ()  # e.g. image hashes: a different image never shares a prefix
    inputs: dict[str, Any] = field(default_factory=dict)  # backend-specific (pixel values, ...)


class LoadedModel(Protocol):
    spec: ModelSpec
    context_length: int
    nbytes: int  # weight bytes held in memory

    def render_prompt(self, messages: list[dict[str, Any]], tools: list[dict] | None) -> Prompt:
        """An OpenAI message list through the tool format and the model's chat template."""

    def accepts_cached_prefix(self, prompt: Prompt, start: int) -> bool:
        """Whether a KV cache of prompt.tokens[:start] can be continued (a vision model says
        no when an image token lies past it)."""

    def new_cache(self, tokens: int) -> list[Any]:
        """An empty KV cache for this model (mlx-lm's per-layer cache objects) for a request
        that may reach `tokens` tokens (prompt + max_tokens)."""

    def generate(
        self, prompt: Prompt, start: int, cache: list[Any], params: SamplingParams, max_tokens: int
    ) -> Iterator[Step]:
        """Prefill prompt.tokens[start:] (`cache` holds the first `start`), then yield steps
        until end of sequence or max_tokens; `cache` is updated in place; the caller may
        stop early."""

"""What the engine needs from a loaded model, whichever library runs it."""
from __future__ import annotations

from dataclasses import dataclass
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


class LoadedModel(Protocol):
    spec: ModelSpec
    context_length: int
    nbytes: int  # weight bytes held in memory

    def render_prompt(self, messages: list[dict[str, Any]], tools: list[dict] | None) -> list[int]:
        """Prompt token ids for an OpenAI message list, through the model's chat template."""

    def new_cache(self) -> list[Any]:
        """An empty KV cache for this model (mlx-lm's per-layer cache objects)."""

    def generate(self, prompt: list[int], cache: list[Any], params: SamplingParams, max_tokens: int) -> Iterator[Step]:
        """Prefill the tokens `cache` lacks, then yield steps until end of sequence or
        max_tokens; `cache` is updated in place; the caller may stop early."""

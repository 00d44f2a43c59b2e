"""What the engine needs from a loaded model, whichever library runs it."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Container, Iterator, Protocol

from mlx.utils import tree_flatten

from registry.locate import context_length
from registry.specs import ModelSpec

from ...tools import get_tool_format
from ..types import ModelLoadError, SamplingParams


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


class MlxBackend:
    """What both backends set up alike around their library's `load`."""

    def __init__(self, spec: ModelSpec, path: Path, load: Callable[[str], tuple[Any, Any]], *,
                 prefill_step: int, full_kv_tokens: int):
        """`load(path)` gives (model, tokenizer or processor), kept as `model` and `loaded`."""
        self.spec = spec
        try:
            self.model, self.loaded = load(str(path))
        except Exception as exc:  # missing/corrupt files, unknown architecture
            raise ModelLoadError(f"could not load {spec.id} from {path}: {exc}") from exc
        self.context_length = context_length(spec, path)
        self.nbytes = sum(v.nbytes for _, v in tree_flatten(self.model.parameters()))
        self.prefill_step = prefill_step
        self.full_kv_tokens = full_kv_tokens
        self.tool_format = get_tool_format(spec.tool_format)


def steps_of(generated: Iterator[tuple[Any, Any]], detokenizer: Any, end_tokens: Container[int],
             max_tokens: int, prefilled: int) -> Iterator[Step]:
    """A library's `generate_step` pairs (token, logprobs) as Steps: each token's text through
    the streaming detokenizer, the finish reason on the last, prefill and decode rates.
    `prefilled`: prompt tokens the first step had to prefill. Closes `generated` at the end."""
    detokenizer.reset()
    started = time.perf_counter()
    first = None
    try:
        for n, (token, _) in enumerate(generated, start=1):
            token = int(token)
            now = time.perf_counter()
            if first is None:
                first = now
            prompt_tps = prefilled / max(first - started, 1e-9)
            generation_tps = (n - 1) / (now - first) if n > 1 else 0.0
            if token in end_tokens:
                detokenizer.finalize()
                yield Step(detokenizer.last_segment, token, n, "stop", prompt_tps, generation_tps)
                return
            detokenizer.add_token(token)
            last = n == max_tokens
            if last:
                detokenizer.finalize()
            yield Step(detokenizer.last_segment, token, n, "length" if last else None, prompt_tps, generation_tps)
    finally:
        generated.close()

"""A scripted backend for engine unit tests: exact, instant output without MLX weights."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from inference.engine.backends.base import Prompt, Step
from inference.engine.engine import Engine
from inference.engine.types import SamplingParams
from registry.specs import ModelSpec, Source


def spec(model_id: str, context_length: int = 64) -> ModelSpec:
    return ModelSpec(id=model_id, source=Source("path", f"/scripted/{model_id}"), context_length=context_length)


@dataclass
class ScriptedCache:
    """Counts the tokens it holds, as mlx-lm's KVCache.offset does."""

    offset: int = 0


@dataclass
class ScriptedModel:
    spec: ModelSpec
    pieces: list[str]
    delay: float = 0.0
    context_length: int = 64
    nbytes: int = 1000
    generated_steps: int = 0

    def render_prompt(self, messages, tools):
        return Prompt([ord(c) for m in messages for c in str(m.get("content") or "")])

    def accepts_cached_prefix(self, prompt: Prompt, start: int) -> bool:
        return True

    def new_cache(self, tokens: int):
        return [ScriptedCache()]

    def generate(self, prompt: Prompt, start: int, cache, params: SamplingParams, max_tokens: int):
        cache[0].offset += len(prompt.tokens) - start
        for i, piece in enumerate(self.pieces[:max_tokens]):
            time.sleep(self.delay)
            self.generated_steps += 1
            cache[0].offset += 1
            last = i == min(len(self.pieces), max_tokens) - 1
            reason = None if not last else ("length" if max_tokens <= len(self.pieces) else "stop")
            yield Step(text=piece, token=1000 + i, generated=i + 1, finish_reason=reason)


@dataclass
class ScriptedWorld:
    pieces: list[str]
    delay: float = 0.0
    loads: list[str] = field(default_factory=list)
    alive: dict[str, ScriptedModel] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def engine(self, **kw) -> Engine:
        return Engine(materialize=lambda s: Path(s.source.location), loader=self.load, default_max_tokens=16, **kw)

    def load(self, s: ModelSpec, path: Path) -> ScriptedModel:
        with self.lock:
            self.loads.append(s.id)
        return ScriptedModel(s, list(self.pieces), self.delay, s.context_length or 64)

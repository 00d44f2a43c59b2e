"""A scripted backend for engine unit tests: exact, instant output without MLX weights, and
the helpers the engine tests share."""
from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from inference.engine import ChatRequest, Engine, SamplingParams, UnsupportedContent
from inference.engine.backends import Prompt
from registry.specs import ModelSpec, Source

FIRST_TOKEN = 1000  # piece i of a script is token FIRST_TOKEN + i


def spec(model_id: str, context_length: int = 64) -> ModelSpec:
    return ModelSpec(id=model_id, source=Source("path", f"/scripted/{model_id}"), context_length=context_length)


def ask(text="hi", **params) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], params=SamplingParams(**params))


async def collect(engine, model_spec, request) -> list:
    return [event async for event in engine.stream(model_spec, request)]


def run(coro):
    return asyncio.run(coro)


def scripted_logprobs(i: int, pieces: int):
    """A log-softmax over the script's tokens (ids below FIRST_TOKEN impossible) in which piece
    i, the one the script takes, is the likeliest by a margin and the others follow in order."""
    import mlx.core as mx

    scores = mx.concatenate([mx.full((FIRST_TOKEN,), -mx.inf), -mx.abs(mx.arange(pieces) - i).astype(mx.float32)])
    return scores - mx.logsumexp(scores)


@dataclass
class ScriptedCache:
    """Counts the tokens it holds, as mlx-lm's KVCache.offset does."""

    offset: int = 0


class ScriptedDetokenizer:
    """mlx-lm's streaming detokenizer contract over a script: token FIRST_TOKEN + i is pieces[i]."""

    def __init__(self, pieces: list[str]):
        self.pieces = pieces
        self.text = ""
        self.read = 0
        self.finalized = False

    def reset(self) -> None:
        self.text, self.read, self.finalized = "", 0, False

    def add_token(self, token: int) -> None:
        self.text += self.pieces[token - FIRST_TOKEN]

    def finalize(self) -> None:
        self.finalized = True

    @property
    def last_segment(self) -> str:
        segment, self.read = self.text[self.read:], len(self.text)
        return segment


@dataclass
class ScriptedModel:
    """Its token stream is the script's pieces, then it ends by itself (no end token)."""

    spec: ModelSpec
    pieces: list[str]
    delay: float = 0.0
    context_length: int = 64
    nbytes: int = 1000
    generated_steps: int = 0
    images_seen: list = field(default_factory=list)  # each prompt's `images`, as rendered
    template_kwargs_seen: list = field(default_factory=list)  # each prompt's template variables
    opens_reasoning: bool = False  # as a template that writes `<think>` into the prompt
    end_tokens: frozenset = frozenset()
    batching: None = None  # decodes alone, as a vision model does
    max_token_chars: int = 1  # one token per character
    fim: bool = False  # whether a completions `suffix` is welcome

    def render_prompt(self, messages, tools, images=(), template_kwargs=None):
        self.images_seen.append(list(images))
        self.template_kwargs_seen.append(dict(template_kwargs or {}))
        return Prompt([ord(c) for m in messages for c in str(m.get("content") or "")],
                      opened="<think>" if self.opens_reasoning else "")

    def render_raw(self, raw):
        """One token per character (token ids as given); a suffix needs `fim` (its layout is
        the real backends', tested on a tokenizer that has FIM tokens)."""
        if raw.suffix is not None and not self.fim:
            raise UnsupportedContent("no fill-in-the-middle tokens", param="suffix")
        prompt = raw.prompt if isinstance(raw.prompt, list) else [ord(c) for c in raw.prompt]
        return Prompt([*prompt, *(ord(c) for c in raw.suffix or "")])

    def accepts_cached_prefix(self, prompt: Prompt, start: int) -> bool:
        return True

    def new_cache(self, tokens: int, prompt=None):
        return [ScriptedCache()]

    def detokenizer(self) -> ScriptedDetokenizer:
        return ScriptedDetokenizer(self.pieces)

    def decode_token(self, token: int) -> str:
        return self.pieces[token - FIRST_TOKEN]

    def token_stream(self, prompt: Prompt, start: int, cache, params: SamplingParams, max_tokens: int):
        cache[0].offset += len(prompt.tokens) - start
        for i in range(min(len(self.pieces), max_tokens)):
            time.sleep(self.delay)
            self.generated_steps += 1
            cache[0].offset += 1
            yield FIRST_TOKEN + i, scripted_logprobs(i, len(self.pieces)) if params.logprobs is not None else None


@dataclass
class ScriptedWorld:
    pieces: list[str]
    delay: float = 0.0
    opens_reasoning: bool = False
    loads: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def engine(self, loader=None, **kw) -> Engine:
        """loader: in place of the world's own (e.g. one that fails for some models)."""
        return Engine(materialize=lambda s: Path(s.source.location), loader=loader or self.load,
                      default_max_tokens=16, **kw)

    def load(self, s: ModelSpec, path: Path) -> ScriptedModel:
        with self.lock:
            self.loads.append(s.id)
        return ScriptedModel(s, list(self.pieces), self.delay, s.context_length or 64,
                             opens_reasoning=self.opens_reasoning)

"""Text models through mlx-lm: load, chat template, generate_step with a prompt cache, and
continuous batching through mlx-lm's BatchGenerator."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import mlx.core as mx
from mlx_lm import load as mlx_lm_load
from mlx_lm.generate import BatchGenerator, generate_step, wired_limit
from mlx_lm.models.cache import KVCache, RotatingKVCache, make_prompt_cache
from mlx_lm.sample_utils import make_logits_processors, make_sampler

from registry.specs import ModelSpec

from ...constraints import GrammarLogitsProcessor, Grammars
from ...tools.base import prepare_prompt
from ..messages import to_template_messages
from ..types import SamplingParams
from .base import Batching, Detokenizer, MlxBackend, Prompt, Sampling
from .kv import reusable_cache
from .sharding import shard


def sampling_of(params: SamplingParams, constraint: GrammarLogitsProcessor | None = None) -> Sampling:
    """mlx-lm's sampler and logits processors for OpenAI sampling parameters; the grammar's
    mask goes last, so no bias or penalty can bring back a token it ruled out."""
    processors = make_logits_processors(
        logit_bias=params.logit_bias or None,
        presence_penalty=params.presence_penalty or None,
        frequency_penalty=params.frequency_penalty or None,
    )
    if constraint is not None:
        processors.append(constraint)
    return Sampling(make_sampler(temp=params.temperature, top_p=params.top_p if params.top_p < 1.0 else 0.0,
                                 top_k=params.top_k), processors)


def mergeable(model: Any) -> bool:
    """Whether continuous batching (engine/batch.py) can merge this mlx-lm model's per-request
    caches into batch caches: every layer's cache type must know how (KVCache and
    RotatingKVCache do)."""
    return all(hasattr(c, "merge") for c in make_prompt_cache(model))


class MlxLmRunner:
    """Sampling and batching over one mlx-lm model class (a text model's, or the one a vision
    model's text-only requests run on); it is the `Batching` capability where the model's
    caches merge."""

    def __init__(self, model: Any, grammars: Grammars, end_tokens: Any, prefill_step: int):
        self.model = model
        self.grammars = grammars
        self.end_tokens = end_tokens
        self.prefill_step = prefill_step

    def sampling(self, params: SamplingParams, prompt: Prompt) -> Sampling:
        """This request's sampler and logits processors (a fresh grammar state per call)."""
        return sampling_of(params, self.grammars.processor(params.grammar, prefix=prompt.opened))

    def batch_generator(self, size: int) -> BatchGenerator:
        return BatchGenerator(
            self.model, stop_tokens=[[t] for t in self.end_tokens],
            completion_batch_size=size, prefill_batch_size=size, prefill_step_size=self.prefill_step,
        )

    def stream(self, prompt: Prompt, start: int, cache: list[Any], params: SamplingParams,
               max_tokens: int) -> Iterator[tuple[int, Any]]:
        """mlx-lm's generate_step: prompt.tokens[start:] prefilled onto `cache` in chunks, then
        decoded."""
        tokens = prompt.tokens[start:]
        sampling = self.sampling(params, prompt)
        if params.seed is not None:
            mx.random.seed(params.seed)
        with wired_limit(self.model):
            yield from generate_step(
                mx.array(tokens), self.model, max_tokens=max_tokens, prompt_cache=cache,
                prefill_step_size=self.prefill_step, sampler=sampling.sampler,
                logits_processors=sampling.logits_processors,
            )


def sharded_load(group: Any, parallel: str) -> Callable[[str], tuple[Any, Any]]:
    """mlx-lm's load, the model split over `group` before its weights are read, so each rank
    reads only its part (backends/sharding.py)."""
    def load(path: str) -> tuple[Any, Any]:
        model, tokenizer = mlx_lm_load(path, lazy=True)
        shard(model, group, parallel)
        mx.eval(model.parameters())
        return model, tokenizer

    return load


class TextModel(MlxBackend):
    def __init__(self, spec: ModelSpec, path: Path, *, prefill_step: int = 2048, full_kv_tokens: int = 0,
                 group: Any = None):
        """group: the mx.distributed group a `distributed:` model is split over (None: this
        process holds all of it)."""
        distributed = group is not None and spec.distributed is not None
        load = sharded_load(group, spec.distributed.parallel) if distributed else mlx_lm_load
        super().__init__(spec, path, load, prefill_step=prefill_step, full_kv_tokens=full_kv_tokens)
        self.tokenizer = self.loaded
        self.end_tokens = self.tokenizer.eos_token_ids
        self.grammars = Grammars(self.tokenizer._tokenizer, self.end_tokens)
        self.runner = MlxLmRunner(self.model, self.grammars, self.end_tokens, self.prefill_step)
        # Every rank of a split model decodes one request at a time, in lockstep (lockstep.py).
        self.batching: Batching | None = self.runner if mergeable(self.model) and not distributed else None

    def render_prompt(self, messages: list[dict[str, Any]], tools: list[dict] | None,
                      images: Sequence[Any] = (), template_kwargs: dict[str, Any] | None = None) -> Prompt:
        """`images` is always empty: a text model refuses image parts (messages.text_of)."""
        template = getattr(self.tokenizer, "chat_template", None)
        template_messages, template_tools = prepare_prompt(
            self.tool_format, to_template_messages(messages), tools, template
        )
        if template:
            text = self.tokenizer.apply_chat_template(
                template_messages, tools=template_tools, add_generation_prompt=True, tokenize=False,
                **self.template_variables(template_kwargs),
            )
            return Prompt(list(self.tokenizer.encode(text, add_special_tokens=False)), opened=self.opened_by(text))
        # No template (a base model): a plain transcript the model can continue.
        text = "".join(f"{m['role']}: {m['content']}\n" for m in template_messages) + "assistant:"
        return Prompt(list(self.tokenizer.encode(text)))

    def accepts_cached_prefix(self, prompt: Prompt, start: int) -> bool:
        return True  # text: any prefix of the tokens is a valid state

    def new_cache(self, tokens: int, prompt: Prompt | None = None) -> list[Any]:
        return reusable_cache(make_prompt_cache(self.model), getattr(self.model, "model_type", ""), tokens,
                              self.full_kv_tokens, RotatingKVCache, KVCache)

    def detokenizer(self) -> Detokenizer:
        return self.tokenizer.detokenizer  # a new one per call

    def token_stream(
        self, prompt: Prompt, start: int, cache: list[Any], params: SamplingParams, max_tokens: int
    ) -> Iterator[tuple[int, Any]]:
        """Prefill what `cache` lacks in chunks, then decode token by token."""
        return self.runner.stream(prompt, start, cache, params, max_tokens)

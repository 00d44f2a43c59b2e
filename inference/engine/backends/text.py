"""Text models through mlx-lm: load, chat template, stream_generate."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import mlx.core as mx
from mlx.utils import tree_flatten
from mlx_lm import load as mlx_lm_load
from mlx_lm import stream_generate
from mlx_lm.sample_utils import make_logits_processors, make_sampler

from registry.locate import context_length
from registry.specs import ModelSpec

from ..messages import to_template_messages
from ..types import ModelLoadError, SamplingParams
from .base import Step

class TextModel:
    def __init__(self, spec: ModelSpec, path: Path):
        self.spec = spec
        try:
            self.model, self.tokenizer = mlx_lm_load(str(path))
        except Exception as exc:  # missing/corrupt files, unknown architecture
            raise ModelLoadError(f"could not load {spec.id} from {path}: {exc}") from exc
        self.context_length = context_length(spec, path)
        self.nbytes = sum(v.nbytes for _, v in tree_flatten(self.model.parameters()))

    def render_prompt(self, messages: list[dict[str, Any]], tools: list[dict] | None) -> list[int]:
        template_messages = to_template_messages(messages)
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                template_messages, tools=tools or None, add_generation_prompt=True, tokenize=False
            )
            return list(self.tokenizer.encode(text, add_special_tokens=False))
        # No template (a base model): a plain transcript the model can continue.
        text = "".join(f"{m['role']}: {m['content']}\n" for m in template_messages) + "assistant:"
        return list(self.tokenizer.encode(text))

    def generate(self, prompt: list[int], params: SamplingParams, max_tokens: int) -> Iterator[Step]:
        if params.seed is not None:
            mx.random.seed(params.seed)
        sampler = make_sampler(temp=params.temperature, top_p=params.top_p if params.top_p < 1.0 else 0.0)
        processors = make_logits_processors(
            logit_bias=params.logit_bias or None,
            presence_penalty=params.presence_penalty or None,
            frequency_penalty=params.frequency_penalty or None,
        )
        for response in stream_generate(
            self.model, self.tokenizer, mx.array(prompt), max_tokens=max_tokens,
            sampler=sampler, logits_processors=processors,
        ):
            yield Step(
                text=response.text,
                generated=response.generation_tokens,
                finish_reason=response.finish_reason,
                prompt_tps=response.prompt_tps,
                generation_tps=response.generation_tps,
            )

"""Fill-in-the-middle: where a code model's FIM tokens go around a prefix and a suffix.

Code models are trained on documents cut into prefix, suffix and middle and joined by three
special tokens, so the model writes the middle after the last one. The tokens' spelling differs
by family; models.yaml's `fim` names them, or, by default, the tokenizer's vocabulary is searched
for one of the known spellings below. Pure: no MLX, no tokenizer object, only its vocabulary.
"""
from __future__ import annotations

from typing import Callable, Collection

from registry.specs import FimSpec

# The known spellings, in the order they are looked for (PSM: prefix, suffix, then middle).
SPELLINGS = (
    FimSpec("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),  # StarCoder, StarCoder2, SantaCoder's successors
    FimSpec("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),  # Qwen2.5-Coder, Qwen3-Coder
    FimSpec("<fim-prefix>", "<fim-suffix>", "<fim-middle>"),  # SantaCoder
    FimSpec("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),  # DeepSeek-Coder
)


def fim_tokens(configured: FimSpec | str, vocabulary: Collection[str]) -> FimSpec | None:
    """The model's FIM tokens: models.yaml's (`none`: the model has none), or with `auto` the
    first known spelling whose three tokens are all in the vocabulary; None when there are none."""
    if configured == "none":
        return None
    if isinstance(configured, FimSpec):
        return configured
    return next((s for s in SPELLINGS if {s.prefix, s.suffix, s.middle} <= set(vocabulary)), None)


def fim_layout(fim: FimSpec, prefix: list[int], suffix: list[int], token_id: Callable[[str], int]) -> list[int]:
    """The prompt's tokens in the PSM order every family above was trained on: prefix token,
    prefix, suffix token, suffix, middle token (the model writes the middle next)."""
    return [token_id(fim.prefix), *prefix, token_id(fim.suffix), *suffix, token_id(fim.middle)]

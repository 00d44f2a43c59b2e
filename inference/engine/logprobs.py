"""Per-token log probabilities, from the distribution the token was actually sampled from.

The backends' token streams hand over mlx-lm's (and mlx-vlm's) log-softmax of the logits after
the logits processors (logit bias, penalties, the grammar mask); the sampler then divides by
the temperature. So the distribution sampled from is that one at the request's temperature,
which is what is reported here (temperature 0, greedy, reports it at temperature 1; top_p's
cut is not applied). Tokens the grammar ruled out have no probability and are never listed.
Any decoder's tokens go through one `Scorer` per request, in `Sequence.on_token`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import mlx.core as mx

MAX_TOP = 20  # OpenAI's bound on top_logprobs


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token: its text, its log probability, and the `top` most likely tokens at
    its step (text, log probability), most likely first. Chat's `logprobs.content[]` and the
    legacy completions' `logprobs` both read it."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


class Scorer:
    def __init__(self, decode: Callable[[int], str], temperature: float, top: int):
        """`decode`: one token id's text; `top`: how many alternatives to list (0..MAX_TOP)."""
        self.decode = decode
        self.temperature = temperature
        self.top = min(max(top, 0), MAX_TOP)

    def __call__(self, token: int, logprobs: Any) -> TokenLogprob:
        scores = logprobs.reshape(-1).astype(mx.float32)
        if self.temperature > 0 and self.temperature != 1.0:
            scores = scores / self.temperature
            scores = scores - mx.logsumexp(scores)
        top: tuple[tuple[str, float], ...] = ()
        if self.top:
            best = mx.argpartition(-scores, kth=self.top - 1)[: self.top]
            values = scores[best]
            order = mx.argsort(-values)
            ids, values = best[order].tolist(), values[order].tolist()
            top = tuple((self.decode(i), v) for i, v in zip(ids, values) if math.isfinite(v))
        return TokenLogprob(self.decode(token), scores[token].item(), top)

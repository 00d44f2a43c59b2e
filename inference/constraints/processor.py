"""A grammar as an MLX logits processor: before each token, every token the grammar does
not allow next gets -inf.

Costs are paid once where possible: the llguidance tokenizer (a walk over the whole
vocabulary, about a second) once per loaded model, each grammar's compile once per model
(an LRU of fresh matchers, copied per request). Per token, the mask is computed on the CPU
while the model's forward pass for that token already runs (`mx.async_eval` first), so the
two overlap instead of adding up.
"""
from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from copy import copy
from typing import Any, Iterable

import llguidance
import llguidance.numpy
import mlx.core as mx
import numpy as np


# Added tokens a grammar may write as text: no spaces, plain ASCII (so the string is also
# the token's spelling in byte-level and metaspace vocabularies alike).
_PLAIN_TEXT = re.compile(r"[!-~]+")


def llg_tokenizer(hf_tokenizer: Any, end_tokens: list[int]) -> llguidance.LLTokenizer:
    """llguidance's view of a Hugging Face fast tokenizer.

    llguidance treats every added token as special (reachable only by name), yet where a
    grammar forces text it allows the tokenizer's own tokens for that text, added ones
    included, and consuming one then fails. Qwen's `<tool_call>` is such a token (added, not
    special): handed over as an ordinary vocabulary entry spelling its text, the mask and the
    parser agree (forced text is then written in ordinary pieces; free text may still use it).
    """
    backend = copy(hf_tokenizer.backend_tokenizer)
    backend.no_padding()
    backend.no_truncation()
    data = json.loads(backend.to_str())
    vocab = data["model"].get("vocab")
    if isinstance(vocab, dict):  # BPE / WordPiece (a Unigram vocab is a list; left as is)
        plain = [t for t in data.get("added_tokens", []) if not t["special"] and _PLAIN_TEXT.fullmatch(t["content"])]
        for token in plain:
            vocab.setdefault(token["content"], token["id"])
        data["added_tokens"] = [t for t in data.get("added_tokens", []) if t not in plain]
    return llguidance.LLTokenizer(json.dumps(data), eos_token=end_tokens)


class GrammarViolation(RuntimeError):
    """The model produced a token the grammar had ruled out (a bug, never the user's)."""


class GrammarLogitsProcessor:
    """mlx-lm / mlx-vlm `logits_processors` entry for one request (it holds its parse state).

    generate_step calls it with all tokens so far and the next-token logits: on the first
    call the tokens are the prompt; on each later call the last one is the token just
    sampled, which the matcher consumes before masking the next position.
    """

    def __init__(self, matcher: llguidance.LLMatcher, vocab_size: int):
        self._matcher = matcher
        self._bitmask = llguidance.numpy.allocate_token_bitmask(1, vocab_size)
        self._started = False

    def __call__(self, tokens: mx.array, logits: mx.array) -> mx.array:
        mx.async_eval(logits)  # the forward pass runs while the mask is computed below
        matcher = self._matcher
        if self._started:
            if matcher.is_stopped():  # the grammar is done: only an end token was allowed
                return logits
            token = tokens[-1].item()
            if not matcher.consume_token(token):
                raise GrammarViolation(f"token {token} broke the grammar: {matcher.get_error()}")
        self._started = True
        llguidance.numpy.fill_next_token_bitmask(matcher, self._bitmask, 0)
        allowed = np.unpackbits(self._bitmask.view(np.uint8), bitorder="little")
        width = logits.shape[-1]
        if allowed.shape[0] < width:  # rows past the tokenizer (padding) are never allowed
            allowed = np.pad(allowed, (0, width - allowed.shape[0]))
        return mx.where(mx.array(allowed[:width].astype(np.bool_)), logits, mx.array(-mx.inf, logits.dtype))


class Grammars:
    """One loaded model's grammar compiler: its llguidance tokenizer and compiled grammars.

    `end_tokens` are the ids that end a turn: the grammar allows them once it is complete
    (and only them when nothing may follow), so a finished answer stops there.
    """

    def __init__(self, hf_tokenizer: Any, end_tokens: Iterable[int], *, capacity: int = 64):
        self._hf_tokenizer = hf_tokenizer
        self._end_tokens = sorted(set(end_tokens))
        self._tokenizer: llguidance.LLTokenizer | None = None
        self._compiled: OrderedDict[str, llguidance.LLMatcher] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    @property
    def tokenizer(self) -> llguidance.LLTokenizer:
        if self._tokenizer is None:
            self._tokenizer = llg_tokenizer(self._hf_tokenizer, self._end_tokens)
        return self._tokenizer

    def matcher(self, grammar: str) -> llguidance.LLMatcher:
        """A fresh matcher for `grammar` (compiled on first use, then copied)."""
        with self._lock:
            template = self._compiled.pop(grammar, None)
            if template is None:
                template = llguidance.LLMatcher(self.tokenizer, grammar)
                if template.is_error():
                    raise ValueError(f"grammar does not compile: {template.get_error()}")
            self._compiled[grammar] = template
            while len(self._compiled) > self._capacity:
                self._compiled.popitem(last=False)
            return template.deep_copy()

    def processor(self, grammar: str | None, prefix: str = "") -> GrammarLogitsProcessor | None:
        """The request's logits processor, or None when its output is free; `prefix` is text
        the grammar takes as already written (a thinking block the prompt opened)."""
        if grammar is None:
            return None
        matcher = self.matcher(grammar)
        if prefix and not matcher.consume_tokens(self.tokenizer.tokenize_str(prefix)):
            raise ValueError(f"the grammar does not accept {prefix!r} first: {matcher.get_error()}")
        return GrammarLogitsProcessor(matcher, self.tokenizer.vocab_size)

"""One request's generation, token by token: the only place a generated token becomes text,
counts, rates and events, whichever decoder produced it (decode.py alone, batch.py in a batch).

The detokenizer rules are mlx-lm's: an end token is not part of the text (the detokenizer is
finalized instead); the last token a request may have is added, then the detokenizer is
finalized. Stop strings are held back until they are known not to be one (stops.py).
"""
from __future__ import annotations

import time
from typing import Any, Container

from .backends import Detokenizer
from .logprobs import Scorer, TokenLogprob
from .scheduler import Job
from .session import Prepared, Session
from .stops import StopFilter
from .types import Delta, Finished, Started


class Sequence:
    def __init__(self, job: Job, session: Session, prepared: Prepared, detokenizer: Detokenizer,
                 end_tokens: Container[int]):
        self.job = job
        self.session = session
        self.prepared = prepared
        self.detokenizer = detokenizer
        self.end_tokens = end_tokens
        self.stops = StopFilter(job.request.params.stop)
        self.tokens: list[int] = []
        self.said = 0  # tokens whose text the Deltas so far carried
        params = job.request.params
        self.scorer = (Scorer(session.model.decode_token, params.temperature, params.logprobs)
                       if params.logprobs is not None else None)
        self.scored: list[TokenLogprob] = []  # since the last Delta
        self.admitted = time.perf_counter()
        self.first: float | None = None  # when its first token came
        self.last: float | None = None
        # Raised by one of its logits processors (a grammar bug) inside a batched decode step;
        # batch.py fails this sequence alone after the step.
        self.error: Exception | None = None
        detokenizer.reset()

    def start(self) -> None:
        """Tell the client generation begins (the prompt is rendered and fits)."""
        prompt = self.prepared.prompt
        self.job.emit(Started(len(prompt.tokens), self.prepared.cached, prompt.opens_reasoning))

    def on_token(self, token: int, logprobs: Any = None) -> str | None:
        """One generated token (and the log-softmax it was sampled from); the finish reason when the sequence ends here: cancelled (the
        client left; this token is dropped), stop (an end token or a stop string), length
        (max_tokens); None to go on."""
        cancelled = self.job.cancelled.is_set()
        if self.session.lockstep is not None:  # every rank stops where rank 0's client left
            cancelled = self.session.lockstep.agree(cancelled)
        if cancelled:
            return "cancelled"
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.last = now
        self.tokens.append(token)
        self.job.generated = len(self.tokens)
        finish = None
        if self.scorer is not None and logprobs is not None and token not in self.end_tokens:
            self.scored.append(self.scorer(token, logprobs))
        if token in self.end_tokens:
            self.detokenizer.finalize()
            finish = "stop"
        else:
            self.detokenizer.add_token(token)
            if len(self.tokens) == self.prepared.max_tokens:
                self.detokenizer.finalize()
                finish = "length"
        text, hit = self.stops.feed(self.detokenizer.last_segment)
        self._say(text)
        if hit:
            return "stop"
        if finish:
            self._say(self.stops.flush())
        return finish

    def on_end(self) -> str:
        """The token stream ended before an end token or max_tokens (a backend whose library
        stops by itself): what is held back is final. The finish reason: stop."""
        self.detokenizer.finalize()
        text, hit = self.stops.feed(self.detokenizer.last_segment)
        self._say(text)
        if not hit:
            self._say(self.stops.flush())
        return "stop"

    def finish(self, reason: str, cache: list | None) -> None:
        """Store its KV cache for the next turn's prefix and send Finished with its counts."""
        self.session.store(self.prepared, self.tokens, cache)
        self.session.keep_alive(self.job.request.keep_alive)
        n = len(self.tokens)
        rate = (n - 1) / (self.last - self.first) if n > 1 and self.last > self.first else 0.0
        self.job.emit(Finished(reason, len(self.prepared.prompt.tokens), n,
                               cached_tokens=self.prepared.cached, generation_tps=rate,
                               stop_sequence=self.stops.matched))

    def _say(self, text: str) -> None:
        if text:
            self.job.emit(Delta(text, len(self.tokens) - self.said, tuple(self.scored)))
            self.said = len(self.tokens)
            self.scored = []

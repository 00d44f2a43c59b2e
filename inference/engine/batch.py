"""Continuous batching of text-model jobs on the engine's worker thread (MLX_SERVER_BATCH_SIZE).

The worker hands the first batchable job to a Batch, which decodes it together with up to
`size - 1` more jobs for the same resident model through the model's BatchGenerator. Between
decode steps it admits the next queued jobs the scheduler lets join (same model, can batch);
when the head of the queue needs another model (or must run alone), it admits nothing more,
lets the batch drain, and returns, so the worker serves that head next: FIFO order is kept,
a request for another model waits for the running batch but never for later arrivals.

Each job gets what the one-at-a-time path (decode.py) gives it, through the same Session and
Sequence: Started, Delta..., Finished with its own counts, stop strings, max_tokens and context
checks, its own sampler and logits processors (sampling params, logit bias, penalties,
grammar), cancellation between steps, and its prompt cache (fetched before it joins, its
cache stored when it leaves).
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from .backends import Batching
from .scheduler import Job, Scheduler
from .sequence import Sequence
from .session import Session
from .types import Finished

log = logging.getLogger(__name__)


class Batch:
    def __init__(self, session: Session, batching: Batching, scheduler: Scheduler, size: int):
        """`batching`: the session model's capability (LoadedModel.batching)."""
        self.session = session
        self.batching = batching
        self.scheduler = scheduler
        self.size = size
        self.seqs: dict[int, Sequence] = {}
        self.peak = 0  # most sequences decoded together
        self.layout: tuple[type, ...] | None = None  # the cache type of each layer
        self.deferred: Job | None = None  # taken from the queue, but its cache cannot join
        self.gen = batching.batch_generator(size)

    def run(self, first: Job) -> Job | None:
        """Decode until the batch is empty; the deferred job, if any, for the next batch."""
        try:
            self._admit(first)
            while True:
                self._admit_queued()
                if not self.seqs:
                    return self.deferred
                self._step()
        except Exception as exc:  # a failed decode step: every job in the batch shares it
            log.exception("batched generation failed")
            for seq in list(self.seqs.values()):
                self._fail(seq, exc)
        finally:
            self.gen.close()
        return self.deferred

    # --- admission -------------------------------------------------------------------

    def _admit_queued(self) -> None:
        """Take queued jobs while there is room and the head of the queue can join."""
        while len(self.seqs) < self.size and self.deferred is None:
            job = self.scheduler.take_joiner(self.session.model.spec.id)
            if job is None:
                return
            if job.request is None:  # a preload of the model already resident
                job.emit(Finished("stop", 0, 0))
                continue
            self._admit(job)

    def _admit(self, job: Job) -> None:
        model = self.session.model
        try:
            prepared = self.session.prepare(job.request)
            layout = tuple(type(c) for c in prepared.cache)
            if self.layout not in (None, layout):
                # Gemma 3's sliding layers get a plain or a rotating cache by request length
                # (backends/kv.py); batch caches of different types cannot be merged.
                self.deferred = job
                return
            self.layout = layout
            sampling = self.batching.sampling(job.request.params, prepared.prompt)
            seq = Sequence(job, self.session, prepared, model.detokenizer(), model.end_tokens)
            (uid,) = self.gen.insert(
                [prepared.prompt.tokens[prepared.cached:]], max_tokens=[prepared.max_tokens],
                caches=[prepared.cache],
                # The processors' token context starts at the uncached part of the prompt, as
                # generate_step's does on the single path (penalties look back 20 tokens).
                all_tokens=[[]], samplers=[sampling.sampler],
                logits_processors=[[_guarded(seq, p) for p in sampling.logits_processors]],
            )
        except Exception as exc:  # this job alone: it is not in the batch yet
            job.fail(exc)
            return
        self.seqs[uid] = seq
        self.peak = max(self.peak, len(self.seqs))
        seq.start()

    # --- decoding --------------------------------------------------------------------

    def _step(self) -> None:
        _, responses = self.gen.next()
        for r in responses:
            seq = self.seqs.get(r.uid)
            if seq is None or seq.error is not None:
                continue  # dealt with below
            # The generator's own verdict (end token, max_tokens) agrees with the sequence's;
            # only a stop string or a cancel ends one the generator still holds.
            finish = seq.on_token(r.token, r.logprobs) or r.finish_reason
            if finish and r.finish_reason:
                self._finish(r.uid, finish, r.prompt_cache)
            elif finish:
                self._remove(r.uid, finish)
        for uid, seq in list(self.seqs.items()):
            if seq.error is not None:
                self.gen.remove([uid])
                self._fail(seq, seq.error)
            elif seq.job.cancelled.is_set():  # it had no token this step (still prefilling)
                self._remove(uid, "cancelled")

    def _remove(self, uid: int, finish: str) -> None:
        """Take a sequence out of the batch before the generator is done with it."""
        caches = self.gen.remove([uid], return_prompt_caches=bool(self.seqs[uid].tokens))
        self._finish(uid, finish, caches[uid][0] if uid in caches else None)

    def _finish(self, uid: int, finish: str, cache: Any) -> None:
        seq = self.seqs.pop(uid)
        seq.finish(finish, cache)
        self._done(seq)

    def _fail(self, seq: Sequence, exc: Exception) -> None:
        self.seqs = {u: s for u, s in self.seqs.items() if s is not seq}
        seq.job.fail(exc)
        self._done(seq)

    def _done(self, seq: Sequence) -> None:
        # Retry-After guesses when a place frees up: with `size` places, size times as often.
        self.scheduler.job_done((time.perf_counter() - seq.admitted) / self.size)


def _guarded(seq: Sequence, processor: Callable) -> Callable:
    """`processor` for one sequence of the batch: its error (a grammar violation) fails that
    sequence alone, after the step, instead of the whole batch."""

    def process(tokens: Any, logits: Any) -> Any:
        if seq.error is not None:
            return logits
        try:
            return processor(tokens, logits)
        except Exception as exc:
            seq.error = exc
            return logits

    return process

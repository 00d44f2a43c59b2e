"""Continuous batching of text-model jobs on the engine's worker thread (MLX_SERVER_BATCH_SIZE).

The worker hands the first batchable job to `run_batch`, which decodes it together with up to
`batch_size - 1` more jobs for the same resident model through mlx-lm's BatchGenerator. Between
decode steps it admits the next queued jobs, as long as they need the same model and can
batch; when the head of the queue needs another model (or must run alone), it admits nothing
more, lets the batch drain, and returns, so the worker serves that head next: FIFO order is
kept, a request for another model waits for the running batch but never for later arrivals.

Each job gets what the one-at-a-time path (Engine._run) gives it: Started, Delta..., Finished
with its own counts, stop strings, max_tokens and context checks, its own sampler and logits
processors (sampling params, logit bias, penalties, grammar), cancellation between steps, and
its prompt cache (fetched before it joins, its cache stored when it leaves).

Requests with a `seed` run alone: mx.random.seed is process-wide, so a seeded request that
shared decode steps with others would neither reproduce nor leave the others' sampling alone.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from mlx_lm.generate import BatchGenerator

from .stops import StopFilter
from .types import Delta, EngineError, Failed, Finished, Started

if TYPE_CHECKING:
    from .engine import Engine, Job, Prepared, Resident

log = logging.getLogger(__name__)


def batchable(job: Job) -> bool:
    """Whether a job may share decode steps with others (its model must agree too:
    `supports_batching`). Seeded requests run alone (see the module docstring)."""
    return job.request is not None and job.request.params.seed is None


def run_batch(engine: Engine, resident: Resident, first: Job) -> None:
    """Serve `first`, and whichever jobs join it, until the batch is empty; a job whose KV
    cache cannot join the batch's waits for the drain and starts the next batch."""
    job: Job | None = first
    while job is not None and not job.cancelled.is_set():
        job = Batch(engine, resident).run(job)


@dataclass
class _Seq:
    """One job in the batch and its decoding state."""

    job: Job
    prepared: Prepared
    detokenizer: Any
    stops: StopFilter
    admitted: float
    generated: list[int] = field(default_factory=list)
    first: float | None = None  # when its first token came
    last: float | None = None
    error: Exception | None = None  # raised by one of its logits processors (a grammar bug)


class Batch:
    def __init__(self, engine: Engine, resident: Resident):
        self.engine = engine
        self.resident = resident
        self.model = resident.model
        self.size = engine._batch_size
        self.seqs: dict[int, _Seq] = {}
        self.layout: tuple[type, ...] | None = None  # the cache type of each layer
        self.deferred: Job | None = None  # taken from the queue, but its cache cannot join
        self.gen = BatchGenerator(
            self.model.model,
            stop_tokens=[[t] for t in self.model.tokenizer.eos_token_ids],
            completion_batch_size=self.size, prefill_batch_size=self.size,
            prefill_step_size=self.model.prefill_step,
        )

    def run(self, first: Job) -> Job | None:
        """Decode until the batch is empty; the deferred job, if any, for the next batch."""
        self.engine._state = "generating"
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
            job = self.engine._peek()
            if job is None:
                return
            if job.cancelled.is_set():
                self.engine._pop()
                continue
            if job.spec.id != self.model.spec.id or (job.request is not None and not batchable(job)):
                return  # it needs a swap or must run alone: drain, then the worker serves it
            self.engine._pop()
            if job.request is None:  # a preload of the model already resident
                job.emit(Finished("stop", 0, 0))
                continue
            self._admit(job)

    def _admit(self, job: Job) -> None:
        try:
            prepared = self.engine._prepare(job, self.resident)
            layout = tuple(type(c) for c in prepared.cache)
            if self.layout not in (None, layout):
                # Gemma 3's sliding layers get a plain or a rotating cache by request length
                # (backends/kv.py); batch caches of different types cannot be merged.
                self.deferred = job
                return
            self.layout = layout
            sampling = self.model.sampling(job.request.params)
            seq = _Seq(job, prepared, self.model.tokenizer.detokenizer, StopFilter(job.request.params.stop),
                       time.perf_counter())
            (uid,) = self.gen.insert(
                [prepared.prompt.tokens[prepared.cached:]], max_tokens=[prepared.max_tokens],
                caches=[prepared.cache],
                # The processors' token context starts at the uncached part of the prompt, as
                # generate_step's does on the single path (penalties look back 20 tokens).
                all_tokens=[[]], samplers=[sampling["sampler"]],
                logits_processors=[[_guarded(seq, p) for p in sampling["logits_processors"]]],
            )
        except Exception as exc:  # this job alone: it is not in the batch yet
            self._report(job, exc)
            return
        prompt, cached = prepared.prompt, prepared.cached
        self.seqs[uid] = seq
        self.engine.batch_peak = max(self.engine.batch_peak, len(self.seqs))
        job.emit(Started(len(prompt.tokens), prepared.max_tokens, cached))

    # --- decoding --------------------------------------------------------------------

    def _step(self) -> None:
        _, responses = self.gen.next()
        now = time.perf_counter()
        for r in responses:
            seq = self.seqs.get(r.uid)
            if seq is None or seq.error is not None or seq.job.cancelled.is_set():
                continue  # dealt with below
            self._token(r.uid, seq, r.token, r.finish_reason, r.prompt_cache, now)
        for uid, seq in list(self.seqs.items()):
            if seq.error is not None:
                self.gen.remove([uid])
                self._fail(seq, seq.error)
            elif seq.job.cancelled.is_set():
                self._remove(uid, seq, "cancelled")

    def _token(self, uid: int, seq: _Seq, token: int, finish: str | None, cache: Any, now: float) -> None:
        """One generated token, as Engine._run handles a Step."""
        if seq.first is None:
            seq.first = now
        seq.last = now
        seq.generated.append(token)
        seq.job.generated = len(seq.generated)
        detokenizer = seq.detokenizer
        if finish == "stop":  # an end token: not part of the text
            detokenizer.finalize()
        else:
            detokenizer.add_token(token)
            if finish == "length":
                detokenizer.finalize()
        text, hit = seq.stops.feed(detokenizer.last_segment)
        if text:
            seq.job.emit(Delta(text))
        if hit:
            self._remove(uid, seq, "stop")
        elif finish:
            tail = seq.stops.flush()
            if tail:
                seq.job.emit(Delta(tail))
            self._finish(uid, seq, finish, cache)

    def _remove(self, uid: int, seq: _Seq, finish: str) -> None:
        """Take a sequence out of the batch before the batch is done with it."""
        caches = self.gen.remove([uid], return_prompt_caches=bool(seq.generated))
        cache = caches[uid][0] if uid in caches else None
        self._finish(uid, seq, finish, cache)

    def _finish(self, uid: int, seq: _Seq, finish: str, cache: Any) -> None:
        del self.seqs[uid]
        prepared = seq.prepared
        self.engine._store(self.resident, prepared, seq.generated, cache)
        n = len(seq.generated)
        prompt_tps = generation_tps = 0.0
        if seq.first is not None:
            prompt_tps = (len(prepared.prompt.tokens) - prepared.cached) / max(seq.first - seq.admitted, 1e-9)
            generation_tps = (n - 1) / (seq.last - seq.first) if n > 1 else 0.0
        seq.job.emit(Finished(finish, len(prepared.prompt.tokens), n, cached_tokens=prepared.cached,
                              prompt_tps=prompt_tps, generation_tps=generation_tps))
        self._done(seq)

    def _fail(self, seq: _Seq, exc: Exception) -> None:
        self.seqs = {u: s for u, s in self.seqs.items() if s is not seq}
        self._report(seq.job, exc)
        self._done(seq)

    def _report(self, job: Job, exc: Exception) -> None:
        """A job's error as the worker reports one (Engine._work)."""
        if isinstance(exc, EngineError):
            job.emit(Failed(exc))
        else:
            log.error("generation failed", exc_info=exc)
            job.emit(Failed(EngineError(f"internal error: {exc}")))

    def _done(self, seq: _Seq) -> None:
        # Retry-After guesses when a place frees up: with `size` places, size times as often.
        self.engine._job_done((time.perf_counter() - seq.admitted) / self.size)


def _guarded(seq: _Seq, processor: Callable) -> Callable:
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

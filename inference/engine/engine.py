"""The one resident model and the single worker thread that owns MLX.

MLX is not thread-safe, so every load, unload and generation happens on one thread, in
arrival order. A request for another model swaps only between jobs, never mid-generation.
With batch_size > 1, text-model jobs share that thread's decode steps (batch.py).
"""
from __future__ import annotations

import asyncio
import gc
import logging
import math
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import mlx.core as mx

from registry.specs import ModelSpec

from .backends import LoadedModel, Prompt
from .batch import batchable, run_batch
from .prompt_cache import PromptCache
from .stops import StopFilter
from .types import (
    ChatRequest, ContextLengthExceeded, Delta, EngineError, Event, Failed, Finished,
    Loading, ModelLoadError, Started,
)

log = logging.getLogger(__name__)

Materializer = Callable[[ModelSpec], Path]
Loader = Callable[[ModelSpec, Path], LoadedModel]
CacheFactory = Callable[[], PromptCache]


class QueueFull(EngineError):
    """More requests wait than the engine's bound allows; `details["retry_after"]` guesses, in
    whole seconds, when a place frees up (one job's usual duration)."""

    code = "queue_full"


class EngineObserver:
    """What the engine tells the outside (metrics) about model loads; the default ignores it."""

    def model_loaded(self, model_id: str, seconds: float, swapped_from: str | None) -> None:
        pass

    def model_load_failed(self, model_id: str) -> None:
        pass

    def model_unloaded(self, model_id: str, reason: str) -> None:
        """reason: "swap" (another model was asked for) or "ttl" (idle too long)."""


@dataclass
class Job:
    spec: ModelSpec
    request: ChatRequest | None  # None: load only (preload)
    emit: Callable[[Event], None]
    cancelled: threading.Event = field(default_factory=threading.Event)
    generated: int = 0  # tokens made so far, read when the client leaves before Finished


class JobStream:
    """One job's events as an async iterator.

    Closing it, or being cancelled while it waits for an event (the client left), cancels the
    job: the worker stops at its next decode step. `generated` counts the tokens made so far.
    """

    def __init__(self, job: Job, events: asyncio.Queue[Event]):
        self.job = job
        self._events = events
        self._done = False

    def __aiter__(self) -> "JobStream":
        return self

    async def __anext__(self) -> Event:
        if self._done:
            raise StopAsyncIteration
        try:
            event = await self._events.get()
        except BaseException:  # cancelled while waiting: nobody will read the rest
            self._close()
            raise
        if isinstance(event, (Finished, Failed)):
            self._done = True
        return event

    def _close(self) -> None:
        self._done = True
        self.job.cancelled.set()

    async def aclose(self) -> None:
        self._close()

    @property
    def generated(self) -> int:
        return self.job.generated


@dataclass
class Prepared:
    """A request checked against the context and matched against the prompt cache."""

    prompt: Prompt
    key: tuple
    cache: list  # the KV cache to continue: a private copy of the cached prefix, or empty
    cached: int  # prompt tokens `cache` already holds
    max_tokens: int


@dataclass
class Resident:
    model: LoadedModel
    loaded_at: float
    load_seconds: float
    prompt_cache: PromptCache | None  # dropped with the model on swap


class Engine:
    def __init__(
        self, *, materialize: Materializer, loader: Loader, default_max_tokens: int,
        prompt_cache: CacheFactory | None = None, max_queue: int = 0, default_ttl: float = 0.0,
        observer: EngineObserver | None = None, batch_size: int = 1,
    ):
        """max_queue: most requests waiting behind the running one(s) (0: no bound).
        default_ttl: seconds a model may sit idle before it is unloaded, for models whose spec
        sets no `ttl` (0: never).
        batch_size: text-model requests decoded together (batch.py); 1: one at a time."""
        self._materialize = materialize
        self._loader = loader
        self._cache_factory = prompt_cache
        self._default_max_tokens = default_max_tokens
        self._max_queue = max_queue
        self._default_ttl = default_ttl
        self._observer = observer or EngineObserver()
        self._batch_size = max(1, batch_size)
        self._idle_since = time.monotonic()
        self._job_seconds = 1.0  # moving average of a job's duration, for Retry-After
        self._jobs: queue.Queue[Job] = queue.Queue()
        self._resident: Resident | None = None
        self._state = "idle"
        self._loading: str | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.started_at = time.time()
        self.swaps = 0
        self.batch_peak = 0  # most requests decoded together so far (batch.py)

    # --- called from request threads / the event loop ------------------------------------

    def submit(self, job: Job) -> None:
        """Queue a job in arrival order; QueueFull if max_queue requests already wait."""
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="mlx-engine", daemon=True)
                self._thread.start()
            if self._max_queue and job.request is not None and self.waiting() >= self._max_queue:
                raise QueueFull(
                    f"{self.waiting()} requests are already waiting for the model (the bound is "
                    f"{self._max_queue}, MLX_SERVER_MAX_QUEUE). Retry later.",
                    retry_after=max(1, math.ceil(self._job_seconds)),
                )
            self._jobs.put(job)

    def waiting(self) -> int:
        """Jobs queued behind the running one whose client is still there."""
        with self._jobs.mutex:
            return sum(1 for job in self._jobs.queue if not job.cancelled.is_set())

    def stream(self, spec: ModelSpec, request: ChatRequest | None) -> JobStream:
        """Queue one job and return its events; a full queue is its first (Failed) event."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Event] = asyncio.Queue()

        def emit(event: Event) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, event)
            except RuntimeError:  # the loop is closed (shutdown): nobody listens, the worker lives on
                job.cancelled.set()

        job = Job(spec, request, emit=emit)
        try:
            self.submit(job)
        except QueueFull as exc:
            events.put_nowait(Failed(exc))
        return JobStream(job, events)

    def preload(self, spec: ModelSpec) -> None:
        self.submit(Job(spec, None, emit=lambda e: None))

    def status(self) -> dict:
        resident = self._resident
        ttl = self.ttl_of(resident.model.spec) if resident else 0.0
        return {
            "state": self._state,
            "loaded_model": resident.model.spec.id if resident else None,
            "loading_model": self._loading,
            "loaded_at": resident.loaded_at if resident else None,
            "load_seconds": round(resident.load_seconds, 3) if resident else None,
            "model_bytes": resident.model.nbytes if resident else None,
            "ttl_seconds": ttl or None,
            "idle_seconds": round(time.monotonic() - self._idle_since, 3)
            if resident and self._state == "idle" else None,
            "queued": self.waiting(),
            "max_queue": self._max_queue or None,
            "swaps": self.swaps,
            "batch_size": self._batch_size,
            "batch_peak": self.batch_peak,
            "prompt_cache": {
                "entries": len(resident.prompt_cache), "bytes": resident.prompt_cache.nbytes,
            } if resident and resident.prompt_cache is not None else None,
            "device": str(mx.default_device()),
            "memory": {
                "active_bytes": mx.get_active_memory(),
                "peak_bytes": mx.get_peak_memory(),
                "cache_bytes": mx.get_cache_memory(),
            },
        }

    @property
    def loaded_id(self) -> str | None:
        return self._resident.model.spec.id if self._resident else None

    # --- the worker thread ---------------------------------------------------------------

    def ttl_of(self, spec: ModelSpec) -> float:
        """Idle seconds before this model is unloaded (0: never)."""
        return self._default_ttl if spec.ttl is None else spec.ttl

    def _idle_timeout(self) -> float | None:
        """How long the worker may wait for a job before the resident model's TTL runs out."""
        if self._resident is None:
            return None
        ttl = self.ttl_of(self._resident.model.spec)
        if not ttl:
            return None
        return max(0.0, self._idle_since + ttl - time.monotonic())

    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self._idle_timeout())
            except queue.Empty:  # idle for the model's whole TTL
                self._unload("ttl")
                continue
            if job.cancelled.is_set():  # the client left while it waited
                continue
            started, batched = time.monotonic(), False
            try:
                batched = self._serve(job)
            except EngineError as exc:
                job.emit(Failed(exc))
            except Exception as exc:  # never let one request kill the worker
                log.exception("generation failed")
                job.emit(Failed(EngineError(f"internal error: {exc}")))
            finally:
                self._state = "idle"
                self._idle_since = time.monotonic()
                if not batched:
                    self._job_done(self._idle_since - started)

    def _job_done(self, seconds: float) -> None:
        """Feed the moving average of a job's duration (Retry-After's guess)."""
        self._job_seconds = 0.8 * self._job_seconds + 0.2 * seconds

    def _ensure_loaded(self, job: Job) -> Resident:
        spec = job.spec
        if self._resident and self._resident.model.spec.id == spec.id:
            return self._resident
        unloaded = self._unload("swap")
        job.emit(Loading(spec.id, unloaded))
        self._state, self._loading = "loading", spec.id
        try:
            started = time.perf_counter()
            try:
                path = self._materialize(spec)
            except (FileNotFoundError, OSError) as exc:
                raise ModelLoadError(f"model {spec.id} is not available: {exc}") from exc
            except Exception as exc:  # e.g. a GGUF import error
                raise ModelLoadError(f"model {spec.id} could not be prepared: {exc}") from exc
            try:
                model = self._loader(spec, path)
            except ModelLoadError:
                raise
            except Exception as exc:  # corrupt weights, bad config: the server stays usable
                log.exception("loading %s failed", spec.id)
                raise ModelLoadError(f"model {spec.id} could not be loaded from {path}: {exc}") from exc
            seconds = time.perf_counter() - started
        except ModelLoadError:
            self._observer.model_load_failed(spec.id)
            gc.collect()  # whatever the failed load allocated
            mx.clear_cache()
            raise
        finally:
            self._loading = None
        cache = self._cache_factory() if self._cache_factory else None
        self._resident = Resident(model, time.time(), seconds, cache)
        if unloaded:
            self.swaps += 1
        self._observer.model_loaded(spec.id, seconds, unloaded)
        log.info("loaded %s in %.2fs (%.1f MB)", spec.id, seconds, model.nbytes / 1e6)
        return self._resident

    def _unload(self, reason: str) -> str | None:
        """Drop the resident model and give its memory back before anything else loads."""
        if self._resident is None:
            return None
        model_id = self._resident.model.spec.id
        self._resident = None
        gc.collect()
        mx.clear_cache()
        self._observer.model_unloaded(model_id, reason)
        log.info("unloaded %s (%s)", model_id, reason)
        return model_id

    def _serve(self, job: Job) -> bool:
        """One job alone, or, with batch_size > 1 and a text model that can batch, the first
        job of a batch that admits more from the queue (batch.py); True for a batch."""
        if self._batch_size > 1 and batchable(job):
            resident = self._ensure_loaded(job)
            if getattr(resident.model, "supports_batching", False):
                run_batch(self, resident, job)
                return True
        self._run(job)
        return False

    def _peek(self) -> Job | None:
        """The job at the head of the queue, left there (the worker alone takes jobs)."""
        with self._jobs.mutex:
            return self._jobs.queue[0] if self._jobs.queue else None

    def _pop(self) -> Job:
        return self._jobs.get_nowait()

    def _prepare(self, job: Job, resident: Resident) -> Prepared:
        """Render the prompt, check it fits, and find its cached prefix (or a fresh cache)."""
        model = resident.model
        request = job.request
        prompt = model.render_prompt(request.messages, request.tools)
        n_prompt = len(prompt.tokens)
        params = request.params
        room = model.context_length - n_prompt
        max_tokens = params.max_tokens or min(self._default_max_tokens, room)
        if max_tokens > room or room <= 0:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {model.context_length} tokens. However, "
                f"you requested {n_prompt + max_tokens} tokens ({n_prompt} in the messages, "
                f"{max_tokens} in the completion). Please reduce the length of the messages or "
                "completion.",
                context_length=model.context_length, prompt_tokens=n_prompt, max_tokens=max_tokens,
            )
        store = resident.prompt_cache
        key = (model.spec.id, *prompt.cache_key)
        cache, rest = store.fetch(key, prompt.tokens) if store is not None else (None, prompt.tokens)
        cached = n_prompt - len(rest)
        if cache is None or not model.accepts_cached_prefix(prompt, cached):
            cache, cached = model.new_cache(n_prompt + max_tokens), 0
        return Prepared(prompt, key, cache, cached, max_tokens)

    def _store(self, resident: Resident, prepared: Prepared, generated: list[int], cache: list | None) -> None:
        """Keep a finished request's KV cache for the next turn's prefix."""
        if resident.prompt_cache is not None and cache is not None:
            resident.prompt_cache.store(prepared.key, prepared.prompt.tokens + generated, cache)

    def _run(self, job: Job) -> None:
        resident = self._ensure_loaded(job)
        model = resident.model
        request = job.request
        if request is None:
            job.emit(Finished("stop", 0, 0))
            return
        prepared = self._prepare(job, resident)
        prompt, cache, cached, max_tokens = prepared.prompt, prepared.cache, prepared.cached, prepared.max_tokens
        n_prompt = len(prompt.tokens)
        params = request.params
        job.emit(Started(n_prompt, max_tokens, cached))
        self._state = "generating"
        stops = StopFilter(params.stop)
        finish, generated, step = "length", [], None
        steps = model.generate(prompt, cached, cache, params, max_tokens)
        try:
            for step in steps:
                if job.cancelled.is_set():
                    finish = "cancelled"
                    break
                generated.append(step.token)
                job.generated = len(generated)
                text, hit = stops.feed(step.text)
                if text:
                    job.emit(Delta(text))
                if hit:
                    finish = "stop"
                    break
                if step.finish_reason:
                    finish = step.finish_reason
            else:
                tail = stops.flush()
                if tail:
                    job.emit(Delta(tail))
        finally:
            steps.close()
        self._store(resident, prepared, generated, cache)
        job.emit(Finished(
            finish, n_prompt, len(generated), cached_tokens=cached,
            prompt_tps=step.prompt_tps if step else 0.0,
            generation_tps=step.generation_tps if step else 0.0,
        ))

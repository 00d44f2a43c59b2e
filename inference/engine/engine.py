"""The one resident model and the single worker thread that owns MLX.

MLX is not thread-safe, so every load, unload and generation happens on one thread, in
arrival order. A request for another model swaps only between jobs, never mid-generation.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, Callable

import mlx.core as mx

from registry.specs import ModelSpec

from .backends import LoadedModel
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


@dataclass
class Job:
    spec: ModelSpec
    request: ChatRequest | None  # None: load only (preload)
    emit: Callable[[Event], None]
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass
class Resident:
    model: LoadedModel
    loaded_at: float
    load_seconds: float
    prompt_cache: PromptCache | None  # dropped with the model on swap


class Engine:
    def __init__(
        self, *, materialize: Materializer, loader: Loader, default_max_tokens: int,
        prompt_cache: CacheFactory | None = None,
    ):
        self._materialize = materialize
        self._loader = loader
        self._cache_factory = prompt_cache
        self._default_max_tokens = default_max_tokens
        self._jobs: queue.Queue[Job] = queue.Queue()
        self._resident: Resident | None = None
        self._state = "idle"
        self._loading: str | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.started_at = time.time()
        self.swaps = 0

    # --- called from request threads / the event loop ------------------------------------

    def submit(self, job: Job) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="mlx-engine", daemon=True)
                self._thread.start()
        self._jobs.put(job)

    async def stream(self, spec: ModelSpec, request: ChatRequest | None) -> AsyncIterator[Event]:
        """Run one job and yield its events; leaving early (disconnect) cancels it."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Event] = asyncio.Queue()
        job = Job(spec, request, emit=lambda e: loop.call_soon_threadsafe(events.put_nowait, e))
        self.submit(job)
        try:
            while True:
                event = await events.get()
                yield event
                if isinstance(event, (Finished, Failed)):
                    return
        finally:
            job.cancelled.set()

    def preload(self, spec: ModelSpec) -> None:
        self.submit(Job(spec, None, emit=lambda e: None))

    def status(self) -> dict:
        resident = self._resident
        return {
            "state": self._state,
            "loaded_model": resident.model.spec.id if resident else None,
            "loading_model": self._loading,
            "loaded_at": resident.loaded_at if resident else None,
            "load_seconds": round(resident.load_seconds, 3) if resident else None,
            "model_bytes": resident.model.nbytes if resident else None,
            "queued": self._jobs.qsize(),
            "swaps": self.swaps,
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

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job.cancelled.is_set():  # the client left while it waited
                continue
            try:
                self._run(job)
            except EngineError as exc:
                job.emit(Failed(exc))
            except Exception as exc:  # never let one request kill the worker
                log.exception("generation failed")
                job.emit(Failed(EngineError(f"internal error: {exc}")))
            finally:
                self._state = "idle"

    def _ensure_loaded(self, job: Job) -> Resident:
        spec = job.spec
        if self._resident and self._resident.model.spec.id == spec.id:
            return self._resident
        unloaded = self._unload()
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
            model = self._loader(spec, path)
            seconds = time.perf_counter() - started
        finally:
            self._loading = None
        cache = self._cache_factory() if self._cache_factory else None
        self._resident = Resident(model, time.time(), seconds, cache)
        if unloaded:
            self.swaps += 1
        log.info("loaded %s in %.2fs (%.1f MB)", spec.id, seconds, model.nbytes / 1e6)
        return self._resident

    def _unload(self) -> str | None:
        """Drop the resident model and give its memory back before anything else loads."""
        if self._resident is None:
            return None
        model_id = self._resident.model.spec.id
        self._resident = None
        gc.collect()
        mx.clear_cache()
        log.info("unloaded %s", model_id)
        return model_id

    def _run(self, job: Job) -> None:
        resident = self._ensure_loaded(job)
        model = resident.model
        request = job.request
        if request is None:
            job.emit(Finished("stop", 0, 0))
            return
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
            cache, cached = model.new_cache(), 0
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
        if store is not None:
            store.store(key, prompt.tokens + generated, cache)
        job.emit(Finished(
            finish, n_prompt, len(generated), cached_tokens=cached,
            prompt_tps=step.prompt_tps if step else 0.0,
            generation_tps=step.generation_tps if step else 0.0,
        ))

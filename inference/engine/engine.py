"""The one resident model and the single worker thread that owns MLX.

MLX is not thread-safe, so every load, unload and generation happens on one thread, in
arrival order (scheduler.py). A request for another model swaps only between jobs, never
mid-generation. An embedding model (~100 MB) has a slot of its own beside the generating model,
so a RAG client that embeds and chats in turn never swaps either out; each slot holds at most
one model, which keeps memory bounded by the largest model of each kind. Each job runs alone
(decode.py) or, with batch_size > 1 and a model that can batch, shares that thread's decode steps with others (batch.py).
"""
from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from pathlib import Path
from typing import Callable

import mlx.core as mx

from registry.specs import ModelSpec

from .backends import Batching, LoadedModel
from .backends.embedding import EmbeddingModel
from .batch import Batch
from .decode import run_alone
from .embed import run_embedding
from .prompt_cache import PromptCache
from .scheduler import Job, JobStream, Scheduler, batchable
from .session import Session
from .types import ChatRequest, EmbedRequest, Event, Failed, Finished, Loading, ModelLoadError, QueueFull, Started

log = logging.getLogger(__name__)

Materializer = Callable[[ModelSpec], Path]
Loader = Callable[[ModelSpec, Path], LoadedModel]
CacheFactory = Callable[[], PromptCache]


class EngineObserver:
    """What the engine tells the outside (metrics) about model loads; the default ignores it."""

    def model_loaded(self, model_id: str, seconds: float, swapped_from: str | None) -> None:
        pass

    def model_load_failed(self, model_id: str) -> None:
        pass

    def model_unloaded(self, model_id: str, reason: str) -> None:
        """reason: "swap" (another model was asked for) or "ttl" (idle too long)."""


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
        self._default_ttl = default_ttl
        self._observer = observer or EngineObserver()
        self._batch_size = max(1, batch_size)
        self._scheduler = Scheduler(max_queue)
        self._idle_since = time.monotonic()
        self._session: Session | None = None
        self._embedder: EmbeddingModel | None = None  # the embedding slot
        self._state = "idle"
        self._loading: str | None = None
        self._swaps = 0  # reported by status() (/health)
        self._batch: Batch | None = None  # the one decoding now
        self._batch_peak = 0  # most requests decoded together by earlier batches
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.started_at = time.time()

    # --- called from request threads / the event loop ------------------------------------

    def submit(self, job: Job) -> None:
        """Queue a job in arrival order (starting the worker on first use); QueueFull if
        max_queue requests already wait."""
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="mlx-engine", daemon=True)
                self._thread.start()
        self._scheduler.submit(job)

    def waiting(self) -> int:
        """Jobs queued behind the running one whose client is still there."""
        return self._scheduler.waiting()

    def stream(self, spec: ModelSpec, request: ChatRequest | EmbedRequest | None) -> JobStream:
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
        session = self._session
        ttl = self.ttl_of(session.model.spec) if session else 0.0
        return {
            "state": self._state,
            "loaded_model": session.model.spec.id if session else None,
            "embedding_model": self._embedder.spec.id if self._embedder else None,
            "loading_model": self._loading,
            "loaded_at": session.loaded_at if session else None,
            "load_seconds": round(session.load_seconds, 3) if session else None,
            "model_bytes": session.model.nbytes if session else None,
            "ttl_seconds": ttl or None,
            "idle_seconds": round(time.monotonic() - self._idle_since, 3)
            if session and self._state == "idle" else None,
            "queued": self.waiting(),
            "max_queue": self._scheduler.max_queue or None,
            "swaps": self._swaps,
            "batch_size": self._batch_size,
            "batch_peak": self.batch_peak,
            "prompt_cache": {
                "entries": len(session.prompt_cache), "bytes": session.prompt_cache.nbytes,
            } if session and session.prompt_cache is not None else None,
            "device": str(mx.default_device()),
            "memory": {
                "active_bytes": mx.get_active_memory(),
                "peak_bytes": mx.get_peak_memory(),
                "cache_bytes": mx.get_cache_memory(),
            },
        }

    @property
    def loaded_id(self) -> str | None:
        return self._session.model.spec.id if self._session else None

    @property
    def session(self) -> Session | None:
        """The resident model and its prompt cache, read-only (None: nothing loaded)."""
        return self._session

    @property
    def batch_peak(self) -> int:
        """Most requests decoded together so far."""
        batch = self._batch
        return max(self._batch_peak, batch.peak if batch else 0)

    def ttl_of(self, spec: ModelSpec) -> float:
        """Idle seconds before this model is unloaded (0: never)."""
        return self._default_ttl if spec.ttl is None else spec.ttl

    # --- the worker thread ---------------------------------------------------------------

    def _idle_timeout(self) -> float | None:
        """How long the worker may wait for a job before the resident model's TTL runs out."""
        if self._session is None:
            return None
        ttl = self.ttl_of(self._session.model.spec)
        if not ttl:
            return None
        return max(0.0, self._idle_since + ttl - time.monotonic())

    def _work(self) -> None:
        while True:
            job = self._scheduler.take(self._idle_timeout())
            if job is None:  # idle for the model's whole TTL
                self._unload("ttl")
                continue
            started, batched = time.monotonic(), False
            try:
                batched = self._serve(job)
            except Exception as exc:  # never let one request kill the worker
                job.fail(exc)
            finally:
                self._state = "idle"
                self._idle_since = time.monotonic()
                if not batched:
                    self._scheduler.job_done(self._idle_since - started)

    def _serve(self, job: Job) -> bool:
        """One job alone, or, with batch_size > 1 and a model that can batch, the first job of
        a batch that admits more from the queue (batch.py); True for a batch. An embedding
        model's job runs in the embedding slot (embed.py)."""
        if job.spec.backend == "embedding":
            embedder = self._ensure_embedder(job.spec)
            self._state = "embedding"
            if job.request is None:
                job.emit(Finished("stop", 0, 0))
            else:
                run_embedding(embedder, job)
            return False
        session = self._ensure_loaded(job)
        if job.request is None:  # a preload: loaded is all it asked
            job.emit(Finished("stop", 0, 0))
            return False
        if job.request.count_only:  # the prompt as a generation would render it; no decode
            request = job.request
            n_prompt = len(session.model.render_prompt(request.messages, request.tools, request.images,
                                                       request.template_kwargs).tokens)
            job.emit(Started(n_prompt))
            job.emit(Finished("stop", n_prompt, 0))
            return False
        self._state = "generating"
        batching = session.model.batching
        if self._batch_size > 1 and batchable(job) and batching is not None:
            self._run_batches(session, batching, job)
            return True
        run_alone(session, job)
        return False

    def _run_batches(self, session: Session, batching: Batching, first: Job) -> None:
        """Serve `first`, and whichever jobs join it, until the batch is empty; a job whose KV
        cache cannot join the batch's waits for the drain and starts the next batch."""
        job: Job | None = first
        while job is not None and not job.cancelled.is_set():
            self._batch = Batch(session, batching, self._scheduler, self._batch_size)
            try:
                job = self._batch.run(job)
            finally:
                self._batch_peak, self._batch = self.batch_peak, None

    def _ensure_loaded(self, job: Job) -> Session:
        spec = job.spec
        if self._session and self._session.model.spec.id == spec.id:
            return self._session
        unloaded = self._unload("swap")
        job.emit(Loading(unloaded))
        model, seconds = self._load(spec)
        cache = self._cache_factory() if self._cache_factory else None
        self._session = Session(model, time.time(), seconds, cache, self._default_max_tokens)
        if unloaded:
            self._swaps += 1
        self._observer.model_loaded(spec.id, seconds, unloaded)
        log.info("loaded %s in %.2fs (%.1f MB)", spec.id, seconds, model.nbytes / 1e6)
        return self._session

    def _ensure_embedder(self, spec: ModelSpec) -> EmbeddingModel:
        """The embedding slot holding `spec`'s model (another embedding model is dropped first)."""
        if self._embedder and self._embedder.spec.id == spec.id:
            return self._embedder
        unloaded = None
        if self._embedder is not None:
            unloaded, self._embedder = self._embedder.spec.id, None
            self._released(unloaded, "swap")
        model, seconds = self._load(spec)
        self._embedder = model
        self._observer.model_loaded(spec.id, seconds, unloaded)
        log.info("loaded embedding model %s in %.2fs (%.1f MB)", spec.id, seconds, model.nbytes / 1e6)
        return model

    def _load(self, spec: ModelSpec) -> tuple[LoadedModel | EmbeddingModel, float]:
        """Materialize and load `spec`'s model: (the loaded model, seconds taken), or
        ModelLoadError with the reason, the memory of a failed load given back."""
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
        return model, seconds

    def _unload(self, reason: str) -> str | None:
        """Drop the resident model and give its memory back before anything else loads."""
        if self._session is None:
            return None
        model_id = self._session.model.spec.id
        self._session = None
        self._released(model_id, reason)
        return model_id

    def _released(self, model_id: str, reason: str) -> None:
        """A model was dropped from its slot: its memory goes back before anything else loads."""
        gc.collect()
        mx.clear_cache()
        self._observer.model_unloaded(model_id, reason)
        log.info("unloaded %s (%s)", model_id, reason)

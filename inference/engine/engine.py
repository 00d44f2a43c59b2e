"""The resident models and the single worker thread that owns MLX.

MLX is not thread-safe, so every load, unload and generation happens on one thread, in
arrival order (scheduler.py). A request for another model swaps only between jobs, never
mid-generation. Without a memory budget one model is resident at a time; with one, models
stay while they fit and the least recently used unpinned one makes room (and jobs of
resident models may pass a job whose load would evict one, a bounded number of times).
Every load is first held to what the budget or the device can give (503 insufficient_memory).
An embedding model (~100 MB) has a slot of its own beside them, so a RAG client that embeds and
chats in turn never swaps either out; the slot holds one model at a time, outside the budget.
Each job runs alone (decode.py) or, with batch_size > 1 and a model that can batch, shares that
thread's decode steps with others (batch.py).
In a distributed group (lockstep.py) rank 0's worker shares each job of a `distributed:` model
with the other ranks, whose engines serve it alike from `follow`; other models stay rank 0's.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import os
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
from .disk_cache import DiskPromptCache
from .embed import run_embedding
from .lockstep import HEARTBEAT_SECONDS, Lockstep
from .prompt_cache import PromptCache
from .scheduler import Job, JobStream, Scheduler, batchable
from .session import Session
from .types import (
    ChatRequest, EmbedRequest, EngineError, Event, Failed, Finished, InsufficientMemory, Loading, ModelLoadError,
    QueueFull, RankLost, Started,
)

log = logging.getLogger(__name__)

Materializer = Callable[[ModelSpec], Path]
Loader = Callable[[ModelSpec, Path], LoadedModel]
CacheFactory = Callable[[], PromptCache]
Estimator = Callable[[ModelSpec, Path], int]  # bytes a load will take (weights + KV)
Fingerprint = Callable[[Path], str]  # of a model folder's weights, for its disk cache

MAX_PASSES = 8  # later jobs of resident models that may run before one waiting for a load


def device_memory() -> int:
    """Bytes the device has: Metal's memory size, else the machine's physical memory."""
    size = mx.device_info().get("memory_size")
    if size:
        return int(size)
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


class EngineObserver:
    """What the engine tells the outside (metrics) about model loads; the default ignores it."""

    def model_loaded(self, model_id: str, seconds: float, swapped_from: str | None) -> None:
        pass

    def model_load_failed(self, model_id: str) -> None:
        pass

    def model_unloaded(self, model_id: str, reason: str) -> None:
        """reason: "swap" (another model was asked for, one-model rule), "budget" (made room
        under the memory budget), "ttl" (idle too long, or keep_alive ran out), "request" (an
        unload call) or "shutdown"."""


class Engine:
    def __init__(
        self, *, materialize: Materializer, loader: Loader, default_max_tokens: int,
        prompt_cache: CacheFactory | None = None, max_queue: int = 0, default_ttl: float = 0.0,
        observer: EngineObserver | None = None, batch_size: int = 1, memory_budget: int = 0,
        device_bytes: int | None = None, estimate: Estimator | None = None,
        disk_cache: DiskPromptCache | None = None, fingerprint: Fingerprint | None = None,
        lockstep: Lockstep | None = None,
    ):
        """max_queue: most requests waiting behind the running one(s) (0: no bound).
        default_ttl: seconds a model may sit idle before it is unloaded, for models whose spec
        sets no `ttl` (0: never).
        batch_size: text-model requests decoded together (batch.py); 1: one at a time.
        memory_budget: bytes the resident models may take together (0: one model at a time).
        device_bytes: what the device can give (default: device_memory()); estimate: a load's
        bytes before it happens (default: none known, 0).
        disk_cache, fingerprint: where prompt caches go when their model is unloaded.
        lockstep: the distributed group this process is a rank of (None: alone); its models
        with a `distributed:` spec are split over it (the loader is handed the group)."""
        self._materialize = materialize
        self._loader = loader
        self._cache_factory = prompt_cache
        self._default_max_tokens = default_max_tokens
        self._default_ttl = default_ttl
        self._observer = observer or EngineObserver()
        self._batch_size = max(1, batch_size)
        self._scheduler = Scheduler(max_queue)
        self._budget = memory_budget
        self._device_bytes = device_bytes or device_memory()
        self._estimate = estimate or (lambda spec, path: 0)
        self._disk = disk_cache
        self._fingerprint = fingerprint
        self._sessions: dict[str, Session] = {}  # the worker's, least recently used first
        self._estimates: dict[str, int] = {}  # each model's last load estimate
        self._resident: tuple[Session, ...] = ()  # the same, published for other threads
        self._embedder: EmbeddingModel | None = None  # the embedding slot
        self._state = "idle"
        self._loading: str | None = None
        self._swaps = 0  # reported by status() (/health)
        self._batch: Batch | None = None  # the one decoding now
        self._batch_peak = 0  # most requests decoded together by earlier batches
        self._lockstep = lockstep
        self._serving_shared = False  # rank 0 serves a job the followers serve too
        # Prompt caches of models evicted for another's load, written when the worker is idle
        # (or before their model loads again), so a swap waits for no disk write.
        self._unsaved: dict[str, Callable[[], int]] = {}
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

    def stream(self, spec: ModelSpec, request: ChatRequest | EmbedRequest | None, *,
               unload: bool = False) -> JobStream:
        """Queue one job and return its events; a full queue is its first (Failed) event."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Event] = asyncio.Queue()

        def emit(event: Event) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, event)
            except RuntimeError:  # the loop is closed (shutdown): nobody listens, the worker lives on
                job.cancelled.set()

        job = Job(spec, request, emit=emit, unload=unload)
        try:
            self.submit(job)
        except QueueFull as exc:
            events.put_nowait(Failed(exc))
        return JobStream(job, events)

    def preload(self, spec: ModelSpec) -> None:
        self.submit(Job(spec, None, emit=lambda e: None))

    def unload(self, spec: ModelSpec) -> JobStream:
        """Queue the model's unload (its prompt cache saved first); Finished once it is gone
        (or was not resident)."""
        return self.stream(spec, None, unload=True)

    def shutdown(self, timeout: float = 30.0) -> bool:
        """Unload every model on the worker (saving their prompt caches), waiting up to
        `timeout` seconds; False when the worker did not get to it in time."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._scheduler.submit(Job(None, None, emit=lambda e: done.set(), unload=True))  # type: ignore[arg-type]
        return done.wait(timeout)

    def resident(self) -> list[dict]:
        """The loaded models, most recently used first, as /health and /v1/models show them."""
        now = time.monotonic()
        return [{
            "id": s.model.spec.id,
            "bytes": s.model.nbytes,
            "budget_bytes": s.bytes,
            "pinned": s.model.spec.pin,
            "loaded_at": s.loaded_at,
            "load_seconds": round(s.load_seconds, 3),
            "ttl_seconds": self._session_ttl(s) or None,
            "idle_seconds": round(now - s.idle_since, 3),
            "prompt_cache": {"entries": len(s.prompt_cache), "bytes": s.prompt_cache.nbytes}
            if s.prompt_cache is not None else None,
        } for s in reversed(self._resident)]

    def status(self) -> dict:
        session = self.session
        ttl = self._session_ttl(session) if session else 0.0
        return {
            "state": self._state,
            "loaded_model": session.model.spec.id if session else None,
            "embedding_model": self._embedder.spec.id if self._embedder else None,
            "loading_model": self._loading,
            "loaded_at": session.loaded_at if session else None,
            "load_seconds": round(session.load_seconds, 3) if session else None,
            "model_bytes": session.model.nbytes if session else None,
            "ttl_seconds": ttl or None,
            "idle_seconds": round(time.monotonic() - session.idle_since, 3)
            if session and self._state == "idle" else None,
            "resident": self.resident(),
            "resident_bytes": sum(s.bytes for s in self._resident),
            "memory_budget_bytes": self._budget or None,
            "device_memory_bytes": self._device_bytes,
            "prompt_cache_disk": {"bytes": self._disk.nbytes(), "max_bytes": self._disk.max_bytes}
            if self._disk is not None else None,
            "queued": self.waiting(),
            "max_queue": self._scheduler.max_queue or None,
            "swaps": self._swaps,
            "batch_size": self._batch_size,
            "distributed": self._lockstep.status() if self._lockstep is not None else None,
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
        """The most recently used resident model."""
        session = self.session
        return session.model.spec.id if session else None

    def is_resident(self, model_id: str) -> bool:
        """Loaded now: a generating model, or the one in the embedding slot."""
        embedder = self._embedder
        return (embedder is not None and embedder.spec.id == model_id) or any(
            s.model.spec.id == model_id for s in self._resident)

    @property
    def session(self) -> Session | None:
        """The most recently used resident model and its prompt cache, read-only (None:
        nothing loaded)."""
        resident = self._resident
        return resident[-1] if resident else None

    @property
    def batch_peak(self) -> int:
        """Most requests decoded together so far."""
        batch = self._batch
        return max(self._batch_peak, batch.peak if batch else 0)

    def ttl_of(self, spec: ModelSpec) -> float:
        """Idle seconds before this model is unloaded (0: never)."""
        return self._default_ttl if spec.ttl is None else spec.ttl

    def _session_ttl(self, session: Session) -> float:
        """A keep_alive's, else the spec's (0: never)."""
        return self.ttl_of(session.model.spec) if session.ttl is None else session.ttl

    # --- the worker thread ---------------------------------------------------------------

    def _idle_timeout(self) -> float | None:
        """How long the worker may wait for a job before a resident model's TTL runs out (or,
        leading a distributed group, before its next heartbeat)."""
        if self._unsaved:
            return 0.0  # write them as soon as no job waits
        ends = [s.idle_since + ttl for s in self._sessions.values() if (ttl := self._session_ttl(s))]
        wait = max(0.0, min(ends) - time.monotonic()) if ends else None
        if self._leads_group() and self._lockstep.lost is None:
            wait = HEARTBEAT_SECONDS if wait is None else min(wait, HEARTBEAT_SECONDS)
        return wait

    def _leads_group(self) -> bool:
        return self._lockstep is not None and self._lockstep.leads

    def _shared(self, job: Job) -> bool:
        """Whether every rank serves this job: one of a `distributed:` model, or the shutdown."""
        return self._leads_group() and (job.spec is None or job.spec.distributed is not None)

    def _work(self) -> None:
        while True:
            budgeted = bool(self._budget)
            job = self._scheduler.take(self._idle_timeout(), max_passes=MAX_PASSES,
                                       needs_eviction=self._needs_eviction if budgeted else None,
                                       resident=self._is_loaded if budgeted else None)
            if job is None:  # idle for a model's whole TTL, or a heartbeat's interval
                if self._unsaved:
                    self._write_unsaved()
                    continue
                now = time.monotonic()
                for session in list(self._sessions.values()):
                    ttl = self._session_ttl(session)
                    if ttl and session.idle_since + ttl <= now:
                        self._unload(session.model.spec.id, "ttl")
                if self._leads_group() and self._lockstep.lost is None:
                    try:
                        self._lockstep.ping()
                    except RankLost:
                        log.error("%s", self._lockstep.message())
                continue
            started, batched = time.monotonic(), False
            try:
                if self._shared(job):
                    self._lead(job)
                else:
                    batched = self._serve(job)
            except Exception as exc:  # never let one request kill the worker
                job.fail(exc)
            finally:
                self._state = "idle"
                self._after(job)
                if not batched:
                    self._scheduler.job_done(time.monotonic() - started)

    def _lead(self, job: Job) -> None:
        """Serve a job every rank serves: share it, then serve it here as they do there. A
        failure that is not the request's own (a library error: a rank may be gone, the ranks'
        states may differ) ends the group: every later shared job fails with RankLost."""
        lockstep = self._lockstep
        if job.spec is None:  # the shutdown: the followers unload and exit (told first: the
            lockstep.stop()   # process may exit as soon as this job says it is done)
            self._serve(job)
            return
        lockstep.lead(job.spec, job.request, job.unload)
        self._serving_shared = True
        try:
            self._serve(job)
        except EngineError:
            raise
        except Exception as exc:
            lockstep.mark_lost(exc)
            log.exception("a job of distributed model %s failed", job.spec.id)
            raise RankLost(lockstep.message()) from exc
        finally:
            self._serving_shared = False

    def follow(self) -> None:
        """A follower rank's whole life, on the calling thread: serve rank 0's orders until it
        shuts down. A failure that is not the request's own ends the process (rank 0 then
        finds the group lost at its next collective)."""
        lockstep = self._lockstep
        while True:
            order = lockstep.next_order()
            if order.kind == "stop":
                for model_id in list(self._sessions):
                    self._unload(model_id, "shutdown")
                self._write_unsaved()
                return
            if order.kind == "unload":
                self._unload(order.spec.id, "request")
            elif order.kind == "job":
                job = Job(order.spec, order.request, emit=lambda event: None, unload=order.unload)
                try:
                    self._serve(job)
                except EngineError:  # every rank raised it alike (a load or a request refused)
                    pass
                self._after(job)

    def _after(self, job: Job) -> None:
        """Start the model's idle clock; unload it if a request's keep_alive of 0 asked and no
        other job waits for it (the other choices of an n > 1 request)."""
        session = self._sessions.get(job.spec.id) if job.spec is not None else None
        if session is None:
            return
        session.idle_since = time.monotonic()
        if session.release and not self._scheduler.waiting_for(job.spec.id):
            self._unload(job.spec.id, "ttl")

    def _is_loaded(self, job: Job) -> bool:
        return job.spec is not None and job.spec.id in self._sessions

    def _needs_eviction(self, job: Job) -> bool:
        """Whether this job's load would unload a resident model (its estimate unknown yet:
        its spec's last one, else the smallest resident model, is taken as its size)."""
        if (job.spec is None or job.unload or job.spec.backend == "embedding" or job.spec.id in self._sessions
                or not self._sessions):
            return False
        need = self._estimates.get(job.spec.id) or min(s.bytes for s in self._sessions.values())
        used = sum(s.bytes for s in self._sessions.values())
        return used + need > min(self._budget, self._device_bytes)

    def _serve(self, job: Job) -> bool:
        """One job alone, or, with batch_size > 1 and a model that can batch, the first job of
        a batch that admits more from the queue (batch.py); True for a batch."""
        if job.unload:
            if job.spec is None:  # shutdown: every model
                for model_id in list(self._sessions):
                    self._unload(model_id, "shutdown")
                self._write_unsaved()
            elif self._embedder is not None and self._embedder.spec.id == job.spec.id:
                self._embedder = None
                self._released(job.spec.id, "request")
            else:
                self._unload(job.spec.id, "request")
            job.emit(Finished("stop", 0, 0))
            return False
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
            n_prompt = len(session.render(request).tokens)
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
        """The job's model resident (loaded now if it was not). A distributed model's ranks
        then settle: each keeps it only if every rank has it (a rank that had it resident
        settles too, so every rank runs the same collectives)."""
        lockstep = self._lockstep if job.spec.distributed is not None else None
        if lockstep is None:
            return self._resident_session(job)
        error, session = None, None
        try:
            session = self._resident_session(job)
        except EngineError as exc:
            error = exc
        try:
            lockstep.settle(error)
        except ModelLoadError:
            if error is None:  # another rank failed: drop this rank's part as well
                self._unload(job.spec.id, "request")
            raise
        session.lockstep = lockstep
        return session

    def _resident_session(self, job: Job) -> Session:
        spec = job.spec
        session = self._sessions.pop(spec.id, None)
        if session is not None:  # most recently used now
            self._sessions[spec.id] = session
            self._publish()
            return session
        self._write_unsaved(spec.id)  # its last prompt cache on disk first, for its new session
        unloaded: list[str] = []

        def make_room(path: Path) -> None:
            """After the files are at hand, before the load: the guard, then the evictions."""
            need = self._estimates[spec.id] = self._estimate(spec, path)
            for victim in self._make_room(spec, need):
                self._unload(victim, "budget" if self._budget else "swap")
                unloaded.append(victim)
            job.emit(Loading(unloaded[0] if unloaded else None))

        model, seconds, path = self._load(spec, make_room)
        cache = self._cache_factory() if self._cache_factory else None
        shelf = None
        if cache is not None and self._disk is not None and self._fingerprint is not None:
            fingerprint = self._fingerprint(path)
            if self._lockstep is not None and spec.distributed is not None:  # this rank's shard's cache
                fingerprint += f"-{spec.distributed.parallel}-rank{self._lockstep.rank}of{self._lockstep.size}"
            shelf = self._disk.shelf(spec.id, fingerprint)
        session = Session(model, time.time(), seconds, cache, self._default_max_tokens,
                          footprint=self._estimates[spec.id], disk=shelf, idle_since=time.monotonic())
        self._sessions[spec.id] = session
        self._publish()
        if unloaded:
            self._swaps += 1
        self._observer.model_loaded(spec.id, seconds, unloaded[0] if unloaded else None)
        log.info("loaded %s in %.2fs (%.1f MB)", spec.id, seconds, model.nbytes / 1e6)
        return session

    def _ensure_embedder(self, spec: ModelSpec) -> EmbeddingModel:
        """The embedding slot holding `spec`'s model (another embedding model is dropped first)."""
        if self._embedder and self._embedder.spec.id == spec.id:
            return self._embedder
        unloaded = None
        if self._embedder is not None:
            unloaded, self._embedder = self._embedder.spec.id, None
            self._released(unloaded, "swap")
        model, seconds, _ = self._load(spec)
        self._embedder = model
        self._observer.model_loaded(spec.id, seconds, unloaded)
        log.info("loaded embedding model %s in %.2fs (%.1f MB)", spec.id, seconds, model.nbytes / 1e6)
        return model

    def _load(self, spec: ModelSpec, before: Callable[[Path], None] | None = None,
              ) -> tuple[LoadedModel | EmbeddingModel, float, Path]:
        """Materialize and load `spec`'s model (`before` runs between the two): the loaded
        model, the seconds taken and its folder, or ModelLoadError with the reason, the memory
        of a failed load given back."""
        self._state, self._loading = "loading", spec.id
        try:
            started = time.perf_counter()
            try:
                path = self._materialize(spec)
            except (FileNotFoundError, OSError) as exc:
                raise ModelLoadError(f"model {spec.id} is not available: {exc}") from exc
            except Exception as exc:  # e.g. a GGUF import error
                raise ModelLoadError(f"model {spec.id} could not be prepared: {exc}") from exc
            if before is not None:
                before(path)
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
        return model, seconds, path

    def _make_room(self, spec: ModelSpec, need: int) -> list[str]:
        """The resident models to unload before `spec` loads, least recently used first: all
        of them without a budget (one model at a time); under one, unpinned ones until it
        fits. InsufficientMemory when it cannot fit even so (nothing is unloaded then)."""
        sessions = list(self._sessions.values())
        limit = min(self._budget, self._device_bytes) if self._budget else self._device_bytes
        kept = [s for s in sessions if s.model.spec.pin] if self._budget else []
        kept_bytes = sum(s.bytes for s in kept)
        if need + kept_bytes > limit:
            where = (f"the memory budget of {self._budget} bytes (MLX_SERVER_MEMORY_BUDGET)"
                     if self._budget and self._budget <= self._device_bytes
                     else f"the device's {self._device_bytes} bytes")
            pinned = f", {kept_bytes} of which pinned models hold ({', '.join(s.model.spec.id for s in kept)})" if kept else ""
            raise InsufficientMemory(
                f"model {spec.id} needs about {need} bytes (weights on disk plus KV for its "
                f"context) but {limit - kept_bytes} are free of {where}{pinned}.",
                needed_bytes=need, available_bytes=limit - kept_bytes, limit_bytes=limit,
            )
        if not self._budget:
            return [s.model.spec.id for s in sessions]
        victims, used = [], sum(s.bytes for s in sessions)
        for s in sessions:
            if used + need <= limit:
                break
            if not s.model.spec.pin:
                victims.append(s.model.spec.id)
                used -= s.bytes
        return victims

    def _publish(self) -> None:
        self._resident = tuple(self._sessions.values())

    def _unload(self, model_id: str, reason: str) -> str | None:
        """Drop a resident model and give its memory back before anything else loads. Its
        prompt cache goes to disk first, or, evicted for another model's load ("swap",
        "budget"), once the worker is idle: its entries' memory is held until then."""
        session = self._sessions.pop(model_id, None)
        if session is None:
            return None
        self._publish()
        if session.lockstep is not None and self._leads_group() and not self._serving_shared:
            try:  # rank 0 decided it alone (a TTL, an eviction for a model of its own)
                self._lockstep.tell_unload(session.model.spec)
            except RankLost:
                pass
        writer = session.prompt_cache_writer()
        del session
        if writer is not None:
            self._unsaved[model_id] = writer
            if reason not in ("swap", "budget"):
                self._write_unsaved(model_id)
        self._released(model_id, reason)
        return model_id

    def _write_unsaved(self, model_id: str | None = None) -> None:
        """Write the prompt caches unloads left (one model's, or all of them) to disk."""
        for unsaved in [model_id] if model_id is not None else list(self._unsaved):
            writer = self._unsaved.pop(unsaved, None)
            if writer is None:
                continue
            try:
                saved = writer()
                if saved:
                    log.info("saved %d prompt cache entries of %s to disk", saved, unsaved)
            except Exception:  # the cache is a convenience: never keep a model loaded over it
                log.exception("saving the prompt cache of %s failed", unsaved)

    def _released(self, model_id: str, reason: str) -> None:
        """A model was dropped from its slot: its memory goes back before anything else loads."""
        gc.collect()
        mx.clear_cache()
        self._observer.model_unloaded(model_id, reason)
        log.info("unloaded %s (%s)", model_id, reason)

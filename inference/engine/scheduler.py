"""The queue of jobs in arrival order: the waiting bound and its Retry-After guess, jobs whose
client left before their turn, and which job runs next (alone, or joining a running batch).

Request threads and the event loop submit; the worker thread alone takes jobs, so a job at
the head of the queue stays there until the worker decides it can run.
"""
from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
from dataclasses import dataclass, field
from typing import Callable

from registry.specs import ModelSpec

from .types import ChatRequest, Embedded, EmbedRequest, EngineError, Event, Failed, Finished, QueueFull

log = logging.getLogger(__name__)


@dataclass
class Job:
    spec: ModelSpec | None  # None: every model (the shutdown's unload)
    request: ChatRequest | EmbedRequest | None  # None: load only (preload), or unload
    emit: Callable[[Event], None]
    cancelled: threading.Event = field(default_factory=threading.Event)
    generated: int = 0  # tokens made so far, read when the client leaves before Finished
    unload: bool = False  # a control job: unload the model (request is None)
    passed: int = 0  # later jobs served before it while it waited for a load (Scheduler.take)

    def fail(self, exc: Exception) -> None:
        """Report an error as this job's last event: an EngineError as it is, anything else (a
        bug, a library error) logged and reported as an internal error."""
        if not isinstance(exc, EngineError):
            log.error("generation failed", exc_info=exc)
            exc = EngineError(f"internal error: {exc}")
        self.emit(Failed(exc))


def batchable(job: Job) -> bool:
    """Whether a job may share decode steps with others (its model must agree too:
    LoadedModel.batching). Seeded requests run alone: mx.random.seed is process-wide, so a
    seeded request that shared decode steps would neither reproduce nor leave the others'
    sampling alone. Requests with images run alone too (mlx-vlm decodes one at a time). A
    count-only job generates nothing: it never joins a batch."""
    request = job.request
    return (isinstance(request, ChatRequest) and request.params.seed is None and not request.images
            and not request.count_only)


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
        if isinstance(event, (Finished, Embedded, Failed)):
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


class Scheduler:
    def __init__(self, max_queue: int = 0):
        """max_queue: most requests waiting behind the running one(s) (0: no bound)."""
        self.max_queue = max_queue
        self._jobs: queue.Queue[Job] = queue.Queue()
        self._submit_lock = threading.Lock()
        self._job_seconds = 1.0  # moving average of a job's duration, for Retry-After

    def submit(self, job: Job) -> None:
        """Queue a job in arrival order; QueueFull if max_queue requests already wait (a
        preload is never refused)."""
        with self._submit_lock:
            if self.max_queue and job.request is not None and self.waiting() >= self.max_queue:
                raise QueueFull(
                    f"{self.waiting()} requests are already waiting for the model (the bound is "
                    f"{self.max_queue}, MLX_SERVER_MAX_QUEUE). Retry later.",
                    retry_after=max(1, math.ceil(self._job_seconds)),
                )
            self._jobs.put(job)

    def waiting(self) -> int:
        """Jobs queued behind the running one whose client is still there."""
        with self._jobs.mutex:
            return sum(1 for job in self._jobs.queue if not job.cancelled.is_set())

    def waiting_for(self, model_id: str) -> bool:
        """Whether a live job of that model is queued."""
        with self._jobs.mutex:
            return any(job.spec is not None and job.spec.id == model_id and not job.cancelled.is_set()
                       for job in self._jobs.queue)

    def take(self, timeout: float | None, *, needs_eviction: Callable[[Job], bool] | None = None,
             resident: Callable[[Job], bool] | None = None, max_passes: int = 0) -> Job | None:
        """The next job whose client is still there, waiting up to `timeout` seconds (None:
        for ever); None when the time ran out first.

        With `needs_eviction` (a memory budget): when the head's load would evict a resident
        model, a later generation job of a resident model runs first (no thrash when clients
        alternate models), but at most `max_passes` of them pass any one job, so none starves.
        """
        while True:
            try:
                job = self._jobs.get(timeout=timeout)
            except queue.Empty:
                return None
            if job.cancelled.is_set():  # the client left while it waited
                continue
            if needs_eviction is None or resident is None or job.passed >= max_passes or not needs_eviction(job):
                return job
            with self._jobs.mutex:
                jobs = self._jobs.queue
                at = next((i for i, other in enumerate(jobs) if not other.cancelled.is_set()
                           and other.request is not None and resident(other)), None)
                if at is None:
                    return job
                later = jobs[at]
                del jobs[at]
                for passed in (job, *list(jobs)[:at]):
                    passed.passed += 1
                jobs.appendleft(job)  # the head keeps its place
                return later

    def take_joiner(self, model_id: str) -> Job | None:
        """The head of the queue, taken, when it can join a running batch of `model_id`: it
        needs that model and can batch, or it is a preload of it. None when the queue is
        empty or the head must wait for the batch to drain (another model, or it runs alone):
        no later arrival ever passes it."""
        while True:
            with self._jobs.mutex:
                job = self._jobs.queue[0] if self._jobs.queue else None
            if job is None:
                return None
            if not job.cancelled.is_set():
                if job.spec is None or job.unload or job.spec.id != model_id or (
                        job.request is not None and not batchable(job)):
                    return None
            self._jobs.get_nowait()
            if not job.cancelled.is_set():
                return job

    def job_done(self, seconds: float) -> None:
        """Feed the moving average of a job's duration (Retry-After's guess)."""
        self._job_seconds = 0.8 * self._job_seconds + 0.2 * seconds

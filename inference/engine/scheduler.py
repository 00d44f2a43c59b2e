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
    spec: ModelSpec
    request: ChatRequest | EmbedRequest | None  # None: load only (preload)
    emit: Callable[[Event], None]
    cancelled: threading.Event = field(default_factory=threading.Event)
    generated: int = 0  # tokens made so far, read when the client leaves before Finished

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

    def take(self, timeout: float | None) -> Job | None:
        """The next job whose client is still there, waiting up to `timeout` seconds (None:
        for ever); None when the time ran out first."""
        while True:
            try:
                job = self._jobs.get(timeout=timeout)
            except queue.Empty:
                return None
            if not job.cancelled.is_set():  # else the client left while it waited
                return job

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
                if job.spec.id != model_id or (job.request is not None and not batchable(job)):
                    return None
            self._jobs.get_nowait()
            if not job.cancelled.is_set():
                return job

    def job_done(self, seconds: float) -> None:
        """Feed the moving average of a job's duration (Retry-After's guess)."""
        self._job_seconds = 0.8 * self._job_seconds + 0.2 * seconds

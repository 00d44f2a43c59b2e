"""Graceful shutdown: on SIGTERM the server starts no new generation (503 `shutting_down`
with Retry-After, from the endpoint frame), lets the answers in flight finish for up to
MLX_SERVER_SHUTDOWN_GRACE seconds, then cancels the rest (their rows say `cancelled`,
"server shutting down") and stops Daphne, which exits 0.

What is in flight is the request tasks this middleware has seen and not yet seen end: a
streamed answer ends when its last frame is sent, not when the view returns.
"""
from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.utils.decorators import sync_and_async_middleware

logger = logging.getLogger(__name__)

REASON = "server shutting down"


class Drain:
    def __init__(self) -> None:
        self.draining = False
        self.tasks: set[asyncio.Task] = set()

    def in_flight(self) -> set[asyncio.Task]:
        self.tasks = {task for task in self.tasks if not task.done()}
        return self.tasks

    async def run(self, grace: float, idle: Callable[[], bool], stop: Callable[[], None]) -> None:
        """`idle`: whether the engine's worker is between jobs; the process must not end while
        it is inside MLX (a cancelled job stops at its next decode step)."""
        self.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        logger.warning("SIGTERM: %d request(s) in flight, %.0f s to finish", len(self.in_flight()), grace)
        while self.in_flight() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        rest = self.in_flight()
        for task in rest:
            task.cancel(REASON)
        if rest:
            logger.warning("cancelled %d request(s) past the grace period", len(rest))
            await asyncio.wait(rest, timeout=10)  # their rows are written as they unwind
        deadline = loop.time() + 30
        while not idle() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        stop()


DRAIN = Drain()


def draining() -> bool:
    return DRAIN.draining


def install(reactor) -> None:
    """Take SIGTERM from Twisted (whose handler stops at once, cutting answers) once it runs."""

    from .runtime import get_engine

    def idle() -> bool:
        return get_engine().status()["state"] == "idle"

    def on_sigterm(signum, frame):
        reactor.callFromThread(lambda: asyncio.ensure_future(
            DRAIN.run(settings.MLX_SERVER_SHUTDOWN_GRACE, idle, reactor.stop)))

    reactor.callWhenRunning(signal.signal, signal.SIGTERM, on_sigterm)


@sync_and_async_middleware
def drain_middleware(get_response):
    """Tracks every request task until its response has been sent (under Daphne: the sync
    stack of the test client has nothing to drain)."""
    async def middleware(request):
        task = asyncio.current_task()
        DRAIN.tasks.add(task)
        try:
            response = await get_response(request)
        except BaseException:
            DRAIN.tasks.discard(task)
            raise
        if response.streaming and response.is_async:
            response.streaming_content = _until_sent(response.streaming_content, task)
        else:
            DRAIN.tasks.discard(task)
        return response

    return middleware if iscoroutinefunction(get_response) else get_response


async def _until_sent(frames: AsyncIterator[bytes], task: asyncio.Task) -> AsyncIterator[bytes]:
    try:
        async for frame in frames:
            yield frame
    finally:
        DRAIN.tasks.discard(task)

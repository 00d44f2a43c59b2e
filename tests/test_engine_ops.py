"""Engine operations on a scripted backend: queue bound, idle TTL, load failures, cancellation
counts and the observer hooks that feed the metrics."""
import asyncio
import time
from dataclasses import replace

from inference.engine import Delta, EngineObserver, Failed, Finished, ModelLoadError, QueueFull, Started
from tests.scripted import ScriptedWorld, ask, collect, run, spec


class Recorder(EngineObserver):
    def __init__(self):
        self.calls = []

    def model_loaded(self, model_id, seconds, swapped_from):
        self.calls.append(("loaded", model_id, swapped_from))

    def model_load_failed(self, model_id):
        self.calls.append(("failed", model_id))

    def model_unloaded(self, model_id, reason):
        self.calls.append(("unloaded", model_id, reason))


def test_queue_bound_refuses_with_retry_after_and_keeps_order():
    world = ScriptedWorld(["t"] * 20, delay=0.01)
    engine = world.engine(max_queue=2)

    async def scenario():
        running = engine.stream(spec("a"), ask("0", max_tokens=20))
        while not isinstance(await running.__anext__(), Started):
            pass
        waiting = [engine.stream(spec("a"), ask(str(i), max_tokens=2)) for i in (1, 2, 3)]
        refused = await waiting[2].__anext__()
        assert engine.waiting() == 2
        await running.aclose()
        served = [[e async for e in s] for s in waiting[:2]]
        return refused, served

    refused, served = run(scenario())
    assert isinstance(refused, Failed) and isinstance(refused.error, QueueFull)
    assert refused.error.details["retry_after"] >= 1
    assert [s[-1].finish_reason for s in served] == ["length", "length"]


def test_cancelled_waiters_free_their_places():
    world = ScriptedWorld(["t"] * 50, delay=0.01)
    engine = world.engine(max_queue=1)

    async def scenario():
        running = engine.stream(spec("a"), ask("0", max_tokens=50))
        await running.__anext__()
        waiter = engine.stream(spec("a"), ask("1"))
        await waiter.aclose()  # the client left while it waited
        assert engine.waiting() == 0
        admitted = await collect(engine, spec("a"), ask("2", max_tokens=2))
        await running.aclose()
        return admitted

    assert run(scenario())[-1].finish_reason == "length"


def test_idle_model_unloads_after_its_ttl_and_loads_again_on_demand():
    world = ScriptedWorld(["x"])
    recorder = Recorder()
    engine = world.engine(default_ttl=60, observer=recorder)
    quick = replace(spec("a"), ttl=0.3)

    run(collect(engine, quick, ask()))
    assert engine.loaded_id == "a" and engine.status()["ttl_seconds"] == 0.3
    deadline = time.time() + 5
    while ("unloaded", "a", "ttl") not in recorder.calls and time.time() < deadline:
        time.sleep(0.05)
    assert engine.loaded_id is None and recorder.calls == [("loaded", "a", None), ("unloaded", "a", "ttl")]
    assert run(collect(engine, quick, ask()))[-1].finish_reason == "stop"
    assert world.loads == ["a", "a"]


def test_ttl_zero_or_unset_keeps_the_model():
    world = ScriptedWorld(["x"])
    engine = world.engine()  # global TTL off
    run(collect(engine, spec("a"), ask()))
    pinned = world.engine(default_ttl=0.2)
    run(collect(pinned, replace(spec("b"), ttl=0), ask()))
    time.sleep(0.5)
    assert engine.loaded_id == "a" and pinned.loaded_id == "b"


def test_a_loader_crash_is_a_load_error_and_the_next_model_loads():
    world = ScriptedWorld(["ok"])
    recorder = Recorder()

    def loader(s, path):
        if s.id == "corrupt":
            raise ValueError("header too large in model.safetensors")
        return world.load(s, path)

    engine = world.engine(loader=loader, observer=recorder)

    async def scenario():
        await collect(engine, spec("a"), ask())
        bad = await collect(engine, spec("corrupt"), ask())
        good = await collect(engine, spec("b"), ask())
        return bad, good

    bad, good = run(scenario())
    assert isinstance(bad[-1], Failed) and isinstance(bad[-1].error, ModelLoadError)
    assert "corrupt" in str(bad[-1].error) and "safetensors" in str(bad[-1].error)
    assert good[-1].finish_reason == "stop" and engine.loaded_id == "b"
    assert recorder.calls == [
        ("loaded", "a", None), ("unloaded", "a", "swap"), ("failed", "corrupt"), ("loaded", "b", None),
    ]


def test_leaving_early_reports_the_tokens_made_so_far():
    world = ScriptedWorld(["t"] * 200, delay=0.005)
    engine = world.engine()

    async def scenario():
        stream = engine.stream(spec("a", context_length=512), ask(max_tokens=200))
        deltas = 0
        async for event in stream:
            deltas += isinstance(event, Delta)
            if deltas == 5:
                break
        await stream.aclose()
        await asyncio.sleep(0.1)
        return stream.generated

    generated = run(scenario())
    assert 5 <= generated <= 8
    assert engine.session.model.generated_steps <= generated + 1


def test_cancelling_the_waiting_task_cancels_the_job():
    """A non-streamed request whose client leaves: Django cancels the view's task mid-wait."""
    world = ScriptedWorld(["t"] * 200, delay=0.005)
    engine = world.engine()

    async def consume(stream):
        async for event in stream:
            if isinstance(event, Finished):
                return event

    async def scenario():
        stream = engine.stream(spec("a", context_length=512), ask(max_tokens=200))
        task = asyncio.create_task(consume(stream))
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0.1)
        return stream, task

    stream, task = run(scenario())
    assert task.cancelled() and stream.job.cancelled.is_set()
    steps = engine.session.model.generated_steps
    assert 0 < steps < 100 and steps - 1 <= stream.generated <= steps  # the step that saw the cancel is dropped
    time.sleep(0.1)
    assert engine.session.model.generated_steps == steps  # nothing more after the cancel

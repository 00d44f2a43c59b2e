"""The engine's own logic (queueing, swapping, stops, context, cancellation) on a scripted backend."""
import asyncio
import threading
from dataclasses import replace

from inference.engine import (
    ContextLengthExceeded, Delta, Failed, Finished, Job, Loading, ModelLoadError, Started,
)
from inference.engine.messages import prompt_chars
from inference.engine.scheduler import batchable
from tests.scripted import ScriptedWorld, ask, collect, run, spec


def test_events_in_order_and_text_joined():
    world = ScriptedWorld(["Hel", "lo", " there"])
    events = run(collect(world.engine(), spec("a"), ask(max_tokens=10)))
    assert isinstance(events[0], Loading) and events[0].unloaded is None
    assert isinstance(events[1], Started) and events[1].prompt_tokens == 2
    assert "".join(e.text for e in events if isinstance(e, Delta)) == "Hello there"
    # The rate is measured (sequence.py), whatever the backend: exact equality on the rest.
    assert events[-1].generation_tps > 0
    assert replace(events[-1], generation_tps=0.0) == Finished("stop", 2, 3)


def test_the_request_images_reach_the_prompt_in_order():
    """Decoded images travel beside the messages (ChatRequest.images), never inside them."""
    world = ScriptedWorld(["ok"])
    engine = world.engine()
    first, second = object(), object()
    request = replace(ask(), images=[first, second])
    run(collect(engine, spec("a"), request))
    assert engine.session.model.images_seen == [[first, second]]


def test_max_tokens_gives_length():
    world = ScriptedWorld(list("abcdef"))
    events = run(collect(world.engine(), spec("a"), ask(max_tokens=2)))
    assert events[-1].finish_reason == "length" and events[-1].completion_tokens == 2


def test_stop_string_across_pieces_is_cut():
    world = ScriptedWorld(["one ", "tw", "o th", "ree"])
    events = run(collect(world.engine(), spec("a"), ask(max_tokens=10, stop=("two",))))
    assert "".join(e.text for e in events if isinstance(e, Delta)) == "one "
    assert events[-1].finish_reason == "stop"


def test_swap_unloads_then_loads_and_same_model_stays():
    world = ScriptedWorld(["x"])
    engine = world.engine()

    async def scenario():
        await collect(engine, spec("a"), ask())
        await collect(engine, spec("a"), ask())
        swap = await collect(engine, spec("b"), ask())
        return swap

    swap = run(scenario())
    assert world.loads == ["a", "b"]
    assert swap[0] == Loading(unloaded="a")
    assert engine.loaded_id == "b" and engine.status()["swaps"] == 1


def test_context_length_exceeded_before_any_generation():
    world = ScriptedWorld(["x"])
    events = run(collect(world.engine(), spec("a", context_length=20), ask("0123456789", max_tokens=15)))
    assert isinstance(events[-1], Failed)
    error = events[-1].error
    assert isinstance(error, ContextLengthExceeded)
    assert error.details == {"context_length": 20, "prompt_tokens": 10, "max_tokens": 15, "param": "messages"}
    assert not any(isinstance(e, Started) for e in events)


def test_a_prompt_too_long_by_its_characters_alone_is_refused_before_it_is_rendered():
    """The scripted vocabulary spells one character per token: more than twice the context in
    characters cannot fit, and is refused without rendering (tokenizing) it."""
    world = ScriptedWorld(["x"])
    engine = world.engine()
    events = run(collect(engine, spec("a", context_length=20), ask("y" * 42, max_tokens=1)))
    error = events[-1].error
    assert isinstance(error, ContextLengthExceeded) and "hold 42 characters, at least 21 tokens" in str(error)
    assert engine.session.model.images_seen == []  # render_prompt never ran
    # at the bound, the prompt is rendered and measured in tokens
    events = run(collect(engine, spec("a", context_length=20), ask("y" * 40, max_tokens=1)))
    assert events[-1].error.details == {"context_length": 20, "prompt_tokens": 40, "max_tokens": 1, "param": "messages"}
    assert len(engine.session.model.images_seen) == 1


def test_prompt_chars_counts_what_templates_render_verbatim():
    messages = [{"role": "system", "content": "abc"}, {"role": "assistant", "content": "x" * 99},
                {"role": "user", "content": [{"type": "text", "text": "de"}, {"type": "image"}]},
                {"role": "tool", "content": "f"}, {"role": "user", "content": None}]
    assert prompt_chars(messages) == 6


def test_load_failure_is_reported_and_the_engine_keeps_serving():
    world = ScriptedWorld(["ok"])

    def flaky(s, path):
        if s.id == "broken":
            raise ModelLoadError("corrupt safetensors")
        return world.load(s, path)

    engine = world.engine(loader=flaky)

    async def scenario():
        bad = await collect(engine, spec("broken"), ask())
        good = await collect(engine, spec("a"), ask())
        return bad, good

    bad, good = run(scenario())
    assert isinstance(bad[-1], Failed) and "corrupt" in str(bad[-1].error)
    assert good[-1].finish_reason == "stop"


def test_requests_are_served_one_at_a_time_in_order():
    world = ScriptedWorld(list("abcd"), delay=0.01)
    engine = world.engine()
    order, active, peak = [], [0], [0]
    lock = threading.Lock()

    async def one(i):
        async for event in engine.stream(spec("a" if i % 2 else "b"), ask(str(i))):
            if isinstance(event, Started):
                with lock:
                    active[0] += 1
                    peak[0] = max(peak[0], active[0])
                    order.append(i)
            if isinstance(event, Finished):
                with lock:
                    active[0] -= 1

    async def scenario():
        await asyncio.gather(*(one(i) for i in range(6)))

    run(scenario())
    assert peak[0] == 1
    assert order == list(range(6))
    assert world.loads == ["b", "a", "b", "a", "b", "a"]


def test_leaving_early_cancels_generation():
    world = ScriptedWorld(["t"] * 200, delay=0.005)
    engine = world.engine()

    async def scenario():
        stream = engine.stream(spec("a", context_length=512), ask(max_tokens=200))
        async for event in stream:
            if isinstance(event, Delta):
                break
        await stream.aclose()
        await asyncio.sleep(0.1)
        # The worker is free again: a new request completes.
        return await collect(engine, spec("a"), ask(max_tokens=3))

    after = run(scenario())
    assert after[-1].finish_reason == "length"
    assert engine.session.model.generated_steps < 20  # stopped within a step or two, not 200


def test_batch_size_keeps_one_at_a_time_for_models_that_cannot_batch():
    """A backend without `batching` (vision, scripted) runs the single path."""
    world = ScriptedWorld(["Hel", "lo"])
    events = run(collect(world.engine(batch_size=4), spec("a"), ask(max_tokens=10)))
    assert isinstance(events[1], Started)
    assert replace(events[-1], generation_tps=0.0) == Finished("stop", 2, 2)


def test_seeded_requests_are_not_batched():
    assert batchable(Job(spec("a"), ask(), emit=print))
    assert not batchable(Job(spec("a"), ask(seed=1), emit=print))
    assert not batchable(Job(spec("a"), None, emit=print))  # a preload

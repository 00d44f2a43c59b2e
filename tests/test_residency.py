"""Residency on the scripted backend: the memory budget (several models, LRU eviction, pins),
the load guard, the no-thrash scheduling and its fairness bound, keep_alive, unload and
shutdown. Sizes are the estimator's (weights + KV, as the load guard counts them)."""
import asyncio
import time
from dataclasses import replace

from inference.engine import Failed, Finished
from inference.engine.engine import MAX_PASSES
from inference.engine.types import InsufficientMemory
from tests.scripted import ScriptedWorld, ask, collect, run, spec

SIZES = {"a": 4000, "b": 4000, "c": 3000, "d": 5000, "big": 50_000}


class Recorder:
    def __init__(self):
        self.unloads = []

    def model_loaded(self, *args):
        pass

    def model_load_failed(self, model_id):
        pass

    def model_unloaded(self, model_id, reason):
        self.unloads.append((model_id, reason))


def wait_until(condition, seconds=5.0) -> bool:
    """The worker unloads after the job's last event: poll for it."""
    deadline = time.time() + seconds
    while not condition() and time.time() < deadline:
        time.sleep(0.01)
    return condition()


def engine_of(world, **kw):
    recorder = Recorder()
    engine = world.engine(estimate=lambda s, path: SIZES[s.id], observer=recorder, **kw)
    return engine, recorder


def ask_in_turn(engine, ids, **params):
    async def scenario():
        return [await collect(engine, spec(i), ask(**params)) for i in ids]
    return run(scenario())


def test_a_budget_that_fits_both_loads_each_once():
    world = ScriptedWorld(["x"])
    engine, recorder = engine_of(world, memory_budget=8000)
    for events in ask_in_turn(engine, ["a", "b", "a", "b", "a"]):
        assert events[-1].finish_reason == "stop"
    assert world.loads == ["a", "b"] and recorder.unloads == []
    status = engine.status()
    assert [m["id"] for m in status["resident"]] == ["a", "b"]  # most recently used first
    assert status["resident_bytes"] == 8000 and status["memory_budget_bytes"] == 8000
    assert status["loaded_model"] == "a" and status["swaps"] == 0


def test_a_budget_that_fits_one_swaps_as_today():
    world = ScriptedWorld(["x"])
    engine, recorder = engine_of(world, memory_budget=5000)
    ask_in_turn(engine, ["a", "b", "a"])
    assert world.loads == ["a", "b", "a"]
    assert recorder.unloads == [("a", "budget"), ("b", "budget")]
    assert engine.status()["swaps"] == 2


def test_no_budget_is_one_model_at_a_time():
    world = ScriptedWorld(["x"])
    engine, recorder = engine_of(world)
    ask_in_turn(engine, ["a", "c", "a"])  # a and c would fit any budget of 7000: there is none
    assert world.loads == ["a", "c", "a"] and recorder.unloads == [("a", "swap"), ("c", "swap")]
    assert len(engine.status()["resident"]) == 1 and engine.status()["memory_budget_bytes"] is None


def test_least_recently_used_unpinned_model_makes_room():
    world = ScriptedWorld(["x"])
    engine, recorder = engine_of(world, memory_budget=8000)
    ask_in_turn(engine, ["a", "b", "a", "c"])  # b is the least recently used
    assert recorder.unloads == [("b", "budget")]
    assert {m["id"] for m in engine.resident()} == {"a", "c"}

    pinned = {"a": replace(spec("a"), pin=True)}
    world = ScriptedWorld(["x"])
    engine, recorder = engine_of(world, memory_budget=8000)

    async def scenario():
        for model_id in ["a", "b", "c"]:  # a is the least recently used, but pinned
            await collect(engine, pinned.get(model_id, spec(model_id)), ask())
    run(scenario())
    assert recorder.unloads == [("b", "budget")]
    assert [m["pinned"] for m in engine.resident()] == [False, True]


def test_a_model_too_big_is_refused_with_the_numbers_and_nothing_is_unloaded():
    world = ScriptedWorld(["x"])
    engine, recorder = engine_of(world, memory_budget=8000)
    ask_in_turn(engine, ["a"])
    (refused,) = ask_in_turn(engine, ["big"])
    assert isinstance(refused[-1], Failed) and isinstance(refused[-1].error, InsufficientMemory)
    error = refused[-1].error
    assert error.code == "insufficient_memory" and "50000" in str(error) and "8000" in str(error)
    assert error.details == {"needed_bytes": 50_000, "available_bytes": 8000, "limit_bytes": 8000}
    assert recorder.unloads == [] and engine.loaded_id == "a"
    assert ask_in_turn(engine, ["a"])[0][-1].finish_reason == "stop" and world.loads == ["a"]

    # the device bounds it too, with no budget set; pinned models' bytes are not free
    world = ScriptedWorld(["x"])
    engine, _ = engine_of(world, device_bytes=10_000)
    assert isinstance(ask_in_turn(engine, ["big"])[0][-1].error, InsufficientMemory)
    engine, _ = engine_of(ScriptedWorld(["x"]), memory_budget=8000)

    async def pinned_then_too_much():
        await collect(engine, replace(spec("a"), pin=True), ask())
        return await collect(engine, spec("d"), ask())
    error = run(pinned_then_too_much())[-1].error
    assert isinstance(error, InsufficientMemory) and "pinned" in str(error)
    assert error.details["available_bytes"] == 4000 and engine.loaded_id == "a"


def test_jobs_of_a_resident_model_pass_a_load_but_never_more_than_the_bound():
    world = ScriptedWorld(["x", "y"], delay=0.02)
    engine, recorder = engine_of(world, memory_budget=5000)
    order = []

    async def one(model_id):
        events = await collect(engine, spec(model_id), ask())
        assert isinstance(events[-1], Finished)
        order.append(model_id)

    async def storm(ids):
        first = asyncio.ensure_future(one("a"))
        while engine.status()["state"] != "generating":  # a is running: the rest queue behind it
            await asyncio.sleep(0.005)
        await asyncio.gather(first, *(one(i) for i in ids))

    run(storm(["b", "a", "b", "a", "b", "a"]))  # two alternating clients
    assert order == ["a", "a", "a", "a", "b", "b", "b"] and world.loads == ["a", "b"]

    world = ScriptedWorld(["x", "y"], delay=0.02)
    engine, recorder = engine_of(world, memory_budget=5000)
    order.clear()
    run(storm(["b"] + ["a"] * (MAX_PASSES + 3)))  # b waits behind MAX_PASSES later jobs, no more
    assert order == ["a"] * (1 + MAX_PASSES) + ["b"] + ["a"] * 3 and world.loads == ["a", "b", "a"]


def test_keep_alive_zero_unloads_after_the_request_others_set_the_ttl():
    world = ScriptedWorld(["x"])
    engine, recorder = engine_of(world)
    ask_in_turn(engine, ["a"])
    run(collect(engine, spec("a"), replace(ask(), keep_alive=0)))
    assert wait_until(lambda: recorder.unloads == [("a", "ttl")]) and engine.loaded_id is None

    run(collect(engine, spec("a"), replace(ask(), keep_alive=0.2)))
    assert engine.resident()[0]["ttl_seconds"] == 0.2
    assert wait_until(lambda: len(recorder.unloads) == 2) and engine.loaded_id is None

    run(collect(engine, spec("a"), replace(ask(), keep_alive=-1)))  # for ever
    assert engine.resident()[0]["ttl_seconds"] is None

    async def two_choices():  # the second waits: the first's keep_alive 0 does not unload under it
        streams = [engine.stream(spec("a"), replace(ask(), keep_alive=0)) for _ in range(2)]
        return [[e async for e in s] for s in streams]
    world.loads.clear()
    assert [events[-1].finish_reason for events in run(two_choices())] == ["stop", "stop"]
    assert world.loads == [] and wait_until(lambda: len(recorder.unloads) == 3) and engine.loaded_id is None


def test_unload_and_shutdown_run_on_the_worker():
    world = ScriptedWorld(["x"])
    engine, recorder = engine_of(world, memory_budget=8000)
    ask_in_turn(engine, ["a", "b"])

    async def unload(model_id):
        return [e async for e in engine.unload(spec(model_id))]
    assert isinstance(run(unload("a"))[-1], Finished)
    assert [m["id"] for m in engine.resident()] == ["b"]
    assert isinstance(run(unload("a"))[-1], Finished)  # not resident: nothing to do
    assert engine.shutdown(timeout=5) and engine.resident() == []
    assert recorder.unloads == [("a", "request"), ("b", "shutdown")]

"""The prompt cache on disk: entries saved and read back (a new Shelf is a restart), the
longest saved prefix chosen, the bytes bound (least recently used first), the weights
fingerprint, and truncated or corrupt files dropped with a log line; then, on SmolLM2 in
process, a swap away and back and a restart reuse the prefix with greedy output identical to a
cold run."""
from __future__ import annotations

import asyncio
import logging
import os
import time

import mlx.core as mx
import pytest
from mlx_lm.models.cache import KVCache

from inference.engine import ChatRequest, Delta, Engine, Finished, SamplingParams
from inference.engine.backends import load_model
from inference.engine.disk_cache import DiskPromptCache, weights_fingerprint
from inference.engine.prompt_cache import PromptCache
from registry.specs import ModelSpec, Source

KEY = ("m", ())


def kv(tokens: int, layers: int = 2, seed: int = 0) -> list[KVCache]:
    mx.random.seed(seed)
    caches = []
    for _ in range(layers):
        cache = KVCache()
        cache.update_and_fetch(mx.random.normal((1, 2, tokens, 8)), mx.random.normal((1, 2, tokens, 8)))
        caches.append(cache)
    return caches


def test_saved_entries_read_back_after_a_restart_longest_prefix_first(tmp_path):
    disk = DiskPromptCache(tmp_path, 1 << 30)
    short, long = kv(4, seed=1), kv(8, seed=2)
    assert disk.shelf("m", "f1").save([(KEY, [1, 2, 3, 4], short), (KEY, list(range(1, 9)), long)]) == 2
    assert disk.shelf("m", "f1").save([(KEY, [1, 2, 3, 4], short)]) == 0  # already there

    shelf = disk.shelf("m", "f1")  # a new process
    tokens, cache = shelf.fetch(KEY, list(range(1, 12)), better_than=0)
    assert tokens == list(range(1, 9)) and cache[0].offset == 8
    assert mx.array_equal(cache[1].state[0], long[1].state[0]).item()
    assert shelf.fetch(KEY, list(range(1, 12)), better_than=8) is None  # memory has as much
    assert shelf.fetch(KEY, [1, 2, 3, 4, 9], better_than=0)[0] == [1, 2, 3, 4]
    assert shelf.fetch(("m", ("image-hash",)), list(range(1, 12)), better_than=0) is None  # another key
    assert disk.shelf("m", "f2").fetch(KEY, list(range(1, 12)), better_than=0) is None  # other weights


def test_the_disk_is_bounded_least_recently_used_first(tmp_path):
    disk = DiskPromptCache(tmp_path, 1 << 30)
    shelf = disk.shelf("m", "f")
    shelf.save([(KEY, [1] * 8, kv(8))])
    one = disk.nbytes()
    old = disk.files()[0]
    os.utime(old, (time.time() - 100, time.time() - 100))
    disk.max_bytes = int(one * 1.5)
    shelf.save([(KEY, [2] * 8, kv(8))])
    assert disk.nbytes() <= disk.max_bytes and not old.exists() and len(disk.files()) == 1


def test_weights_fingerprint_follows_the_files_and_the_importer_version(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x" * 1000)
    first = weights_fingerprint(tmp_path, "v1")
    assert weights_fingerprint(tmp_path, "v1") == first and weights_fingerprint(tmp_path, "v2") != first
    (tmp_path / "model.safetensors").write_bytes(b"y" * 1000)
    assert weights_fingerprint(tmp_path, "v1") != first


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_truncated_or_corrupt_files_are_dropped_and_logged(tmp_path, caplog, damage):
    disk = DiskPromptCache(tmp_path, 1 << 30)
    disk.shelf("m", "f").save([(KEY, list(range(16)), kv(16))])
    (file,) = disk.files()
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x10\x00" + os.urandom(200))
    with caplog.at_level(logging.WARNING, logger="inference.engine.disk_cache"):
        assert disk.shelf("m", "f").fetch(KEY, list(range(20)), better_than=0) is None
    assert not file.exists() and "dropped unreadable" in caplog.text


# --- on real weights --------------------------------------------------------------------

HISTORY = [
    {"role": "system", "content": "You are a terse assistant. " + "Remember the facts. " * 25},
    {"role": "user", "content": "The code word is PLUM. Say OK."},
    {"role": "assistant", "content": "OK."},
]


def turn(text: str) -> ChatRequest:
    return ChatRequest(messages=[*HISTORY, {"role": "user", "content": text}],
                       params=SamplingParams(temperature=0.0, max_tokens=8))


def engine_for(disk: DiskPromptCache | None) -> Engine:
    return Engine(materialize=lambda s: s.source.location, loader=load_model, default_max_tokens=64,
                  prompt_cache=lambda: PromptCache(max_entries=8, max_bytes=1 << 30),
                  disk_cache=disk, fingerprint=weights_fingerprint)


async def answer(engine, spec, request) -> tuple[str, int]:
    events = [e async for e in engine.stream(spec, request)]
    assert isinstance(events[-1], Finished), events
    return "".join(e.text for e in events if isinstance(e, Delta)), events[-1].cached_tokens


@pytest.mark.model
def test_a_swap_back_and_a_restart_reuse_the_prefix_with_the_cold_output(tmp_path, smollm2_dir):
    from pathlib import Path

    smol = ModelSpec(id="smol", source=Source("path", str(smollm2_dir)), context_length=2048)
    other = ModelSpec(id="other", source=Source("path", str(smollm2_dir)), context_length=2048)
    for spec in (smol, other):
        object.__setattr__(spec.source, "location", Path(smollm2_dir))
    disk = DiskPromptCache(tmp_path / "cache", 1 << 30)

    async def scenario():
        cold = await answer(engine_for(None), smol, turn("What is the code word?"))
        engine = engine_for(disk)
        await answer(engine, smol, turn("Say hi."))  # the history's KV, kept in memory
        await answer(engine, other, ChatRequest(messages=[{"role": "user", "content": "hi"}],
                                                params=SamplingParams(max_tokens=1)))
        deadline = time.time() + 30  # the swap evicted smol; its cache is written once the worker idles
        while not disk.files() and time.time() < deadline:
            await asyncio.sleep(0.05)
        assert disk.files()
        back = await answer(engine, smol, turn("What is the code word?"))
        engine.shutdown(timeout=30)
        restarted = await answer(engine_for(disk), smol, turn("What is the code word?"))
        return cold, back, restarted

    cold, back, restarted = asyncio.run(scenario())
    assert cold[1] == 0 and back[1] > 100 and restarted[1] > 100, (cold, back, restarted)
    assert back[0] == cold[0] and restarted[0] == cold[0]

"""The prefix-cache policy on real mlx-lm KV caches (no model: random keys and values)."""
import mlx.core as mx
from mlx_lm.models.cache import KVCache

from inference.engine.prompt_cache import PromptCache

LAYERS, HEADS, DIM = 2, 2, 8


def filled_cache(n_tokens: int) -> list[KVCache]:
    cache = [KVCache() for _ in range(LAYERS)]
    for layer in cache:
        kv = mx.random.normal((1, HEADS, n_tokens, DIM))
        layer.update_and_fetch(kv, kv)
    mx.eval([c.state for c in cache])
    return cache


def test_miss_on_empty_cache():
    store = PromptCache(max_entries=4, max_bytes=1 << 30)
    cache, rest = store.fetch(("m",), [1, 2, 3])
    assert cache is None and rest == [1, 2, 3]


def test_exact_hit_refeeds_the_last_token():
    store = PromptCache(max_entries=4, max_bytes=1 << 30)
    store.store(("m",), [1, 2, 3, 4], filled_cache(4))
    cache, rest = store.fetch(("m",), [1, 2, 3, 4])
    assert rest == [4] and cache[0].offset == 3


def test_shorter_entry_is_a_partial_hit():
    store = PromptCache(max_entries=4, max_bytes=1 << 30)
    store.store(("m",), [1, 2, 3], filled_cache(3))
    cache, rest = store.fetch(("m",), [1, 2, 3, 4, 5])
    assert rest == [4, 5] and cache[0].offset == 3


def test_longer_entry_is_trimmed_back_to_the_shared_prefix():
    store = PromptCache(max_entries=4, max_bytes=1 << 30)
    store.store(("m",), [1, 2, 3, 4, 5, 6], filled_cache(6))
    cache, rest = store.fetch(("m",), [1, 2, 3, 9])
    assert rest == [9] and cache[0].offset == 3
    # The stored entry itself is untouched (the fetch got a copy).
    again, rest = store.fetch(("m",), [1, 2, 3, 4, 5, 6, 7])
    assert rest == [7] and again[0].offset == 6


def test_miss_after_divergence_at_the_first_token():
    store = PromptCache(max_entries=4, max_bytes=1 << 30)
    store.store(("m",), [1, 2, 3], filled_cache(3))
    cache, rest = store.fetch(("m",), [7, 2, 3])
    assert cache is None and rest == [7, 2, 3]


def test_only_tokens_the_cache_holds_are_keyed():
    """Generation leaves the last sampled token unfed: the key stops at the cache's offset."""
    store = PromptCache(max_entries=4, max_bytes=1 << 30)
    store.store(("m",), [1, 2, 3, 4, 5], filled_cache(4))
    cache, rest = store.fetch(("m",), [1, 2, 3, 4, 5, 6])
    assert rest == [5, 6] and cache[0].offset == 4


def test_images_are_part_of_the_key():
    store = PromptCache(max_entries=4, max_bytes=1 << 30)
    store.store(("m", "img-aaa"), [1, 2, 3], filled_cache(3))
    cache, _ = store.fetch(("m", "img-bbb"), [1, 2, 3, 4])
    assert cache is None
    cache, rest = store.fetch(("m", "img-aaa"), [1, 2, 3, 4])
    assert rest == [4]


def test_eviction_under_the_byte_bound_drops_the_least_recent():
    one = sum(c.nbytes for c in filled_cache(16))
    store = PromptCache(max_entries=10, max_bytes=int(one * 2.5))
    store.store(("m",), [1] * 16, filled_cache(16))
    store.store(("m",), [2] * 16, filled_cache(16))
    store.store(("m",), [3] * 16, filled_cache(16))
    assert len(store) == 2 and store.nbytes <= one * 2.5
    assert store.fetch(("m",), [1] * 16)[0] is None
    assert store.fetch(("m",), [3] * 16)[0] is not None


def test_eviction_under_the_count_bound():
    store = PromptCache(max_entries=2, max_bytes=1 << 30)
    for t in (1, 2, 3):
        store.store(("m",), [t] * 4, filled_cache(4))
    assert len(store) == 2
    assert store.fetch(("m",), [1] * 4)[0] is None

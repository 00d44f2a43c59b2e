"""Sliding-window layers with a plain KV cache (inference/engine/backends/kv.py): the same
attention as mlx's rotating cache, and a prefix the prompt cache can reuse past the window.

On the tiny random Gemma 3 GGUF import (text backend, window 16) and the tiny Gemma 3 vision
fixture (vision backend, window 512): prompts longer than the window.
"""
import mlx.core as mx
import pytest
from mlx_lm.models.cache import KVCache, RotatingKVCache

from inference.engine.backends.text import TextModel
from inference.engine.backends.vision import VisionModel
from inference.engine.prompt_cache import PromptCache
from inference.engine.types import SamplingParams
from registry.specs import parse_spec
from testkit.cache import imported

pytestmark = pytest.mark.model

GREEDY = SamplingParams(temperature=0.0)


@pytest.fixture(scope="module")
def gemma_model(tiny_ggufs):
    folder = imported(tiny_ggufs("gemma3"))
    return TextModel(parse_spec({"id": "g", "source": {"path": str(folder)}}, 0), folder, prefill_step=8)


@pytest.fixture
def gemma_text(gemma_model):
    """full_kv_tokens -> the one loaded model with that bound (loading takes seconds: Gemma's
    262k-piece vocabulary)."""
    def with_bound(full_kv_tokens: int) -> TextModel:
        gemma_model.full_kv_tokens = full_kv_tokens
        return gemma_model
    return with_bound


@pytest.fixture(scope="module")
def gemma_vision(tiny_gemma3_dir):
    spec = parse_spec({"id": "v", "backend": "vision", "source": {"path": str(tiny_gemma3_dir)}}, 0)
    return VisionModel(spec, tiny_gemma3_dir, prefill_step=256, full_kv_tokens=1 << 16)


def logits_along(model, cache, tokens: list[int], chunk: int) -> mx.array:
    """Last-position logits after each chunk of `tokens` fed through `cache`."""
    out = []
    for i in range(0, len(tokens), chunk):
        logits = model(mx.array([tokens[i:i + chunk]]), cache=cache)
        out.append(logits[0, -1].astype(mx.float32))
    return mx.stack(out)


def test_plain_cache_gives_the_rotating_cache_attention(gemma_text):
    text = gemma_text(1 << 16)
    window = text.model.args.sliding_window
    tokens = [(7 * i) % 200 + 3 for i in range(4 * window)]
    rotating = text.model.make_cache()
    assert any(isinstance(c, RotatingKVCache) for c in rotating)
    plain = text.new_cache(len(tokens))
    assert not any(isinstance(c, RotatingKVCache) for c in plain)
    # Prefill in chunks, then one token at a time, past the window.
    expected = mx.concatenate([logits_along(text.model, rotating, tokens[:3 * window], 8),
                               logits_along(text.model, rotating, tokens[3 * window:], 1)])
    got = mx.concatenate([logits_along(text.model, plain, tokens[:3 * window], 8),
                          logits_along(text.model, plain, tokens[3 * window:], 1)])
    assert mx.allclose(got, expected, atol=2e-2).item()
    # Control: the same plain caches without the window mask attend further back and differ.
    wide = text.new_cache(len(tokens))
    text.model.model.window_size = 10 * len(tokens)
    try:
        unwindowed = mx.concatenate([logits_along(text.model, wide, tokens[:3 * window], 8),
                                     logits_along(text.model, wide, tokens[3 * window:], 1)])
    finally:
        text.model.model.window_size = window
    assert not mx.allclose(unwindowed, expected, atol=2e-2).item()


def test_the_rotating_cache_stays_past_the_bound_or_with_the_cache_off(gemma_text):
    assert any(isinstance(c, RotatingKVCache) for c in gemma_text(0).new_cache(100))
    bounded = gemma_text(100)
    assert not any(isinstance(c, RotatingKVCache) for c in bounded.new_cache(100))
    assert any(isinstance(c, RotatingKVCache) for c in bounded.new_cache(101))
    assert all(isinstance(c, KVCache) for c in bounded.new_cache(100))


def run(model, prompt, start, cache, max_tokens=6) -> list[int]:
    """The generated tokens, up to and with an end token, as the engine takes them."""
    tokens = []
    stream = model.token_stream(prompt, start, cache, GREEDY, max_tokens)
    try:
        for token, _ in stream:
            tokens.append(int(token))
            if tokens[-1] in model.end_tokens:
                break
    finally:
        stream.close()
    return tokens


def second_turn(model, first_messages: list[dict]) -> tuple[int, list[int], list[int], int]:
    """Two turns through a prompt cache the way the engine does it: (tokens reused, answer with
    the cache, answer cold, the second prompt's length)."""
    store = PromptCache(max_entries=4, max_bytes=1 << 30)
    first = model.render_prompt(first_messages, None)
    cache = model.new_cache(len(first.tokens) + 6, first)
    answer = run(model, first, 0, cache)
    store.store(("k",), first.tokens + answer, cache)
    reply = model.tokenizer.decode(answer)
    follow = model.render_prompt(first_messages + [{"role": "assistant", "content": reply},
                                                   {"role": "user", "content": "And then what happened?"}], None)
    hit, rest = store.fetch(("k",), follow.tokens)
    start = len(follow.tokens) - len(rest)
    assert hit is not None and model.accepts_cached_prefix(follow, start)
    warm = run(model, follow, start, hit)
    cold = run(model, follow, 0, model.new_cache(len(follow.tokens) + 6, follow))
    return start, warm, cold, len(first.tokens)


def test_a_turn_past_the_window_reuses_the_prefix_text(gemma_text):
    text = gemma_text(1 << 16)
    messages = [{"role": "user", "content": "Tell me a long story about the sea and ships. " * 6}]
    start, warm, cold, first_len = second_turn(text, messages)
    assert first_len > 3 * text.model.args.sliding_window
    assert start >= first_len  # the whole first prompt, past the window
    assert warm == cold


def test_past_the_window_the_rotating_cache_reuses_nothing_text(gemma_text):
    """What the plain caches fix: with the rotating ones the entry cannot be trimmed back."""
    text = gemma_text(0)
    store = PromptCache(max_entries=4, max_bytes=1 << 30)
    first = text.render_prompt([{"role": "user", "content": "Tell me a long story about the sea. " * 6}], None)
    cache = text.new_cache(len(first.tokens) + 6)
    answer = run(text, first, 0, cache)
    store.store(("k",), first.tokens + answer, cache)
    different_end = first.tokens + [answer[0] + 1]
    hit, rest = store.fetch(("k",), different_end)
    assert hit is None and rest == different_end


def test_a_turn_past_the_window_reuses_the_prefix_vision(gemma_vision):
    window = gemma_vision.model.language_model.config.sliding_window
    messages = [{"role": "user", "content": "Describe every ship in the harbour, one by one. " * 60}]
    start, warm, cold, first_len = second_turn(gemma_vision, messages)
    assert first_len > window
    assert start >= first_len
    assert warm == cold

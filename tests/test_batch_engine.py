"""Continuous batching (engine/batch.py) in process on real models: what a request gets in a
batch of 4 equals what it gets alone (batch_size 1), for sampling params that change the
logits per sequence (grammar, penalties, logit bias) and for Gemma 3 requests whose KV caches
have different layer types (they cannot share one batch: the second waits for the drain)."""
from __future__ import annotations

import asyncio

import pytest

from inference.constraints import build_grammar
from inference.engine import ChatRequest, Delta, Engine, Finished, SamplingParams
from inference.engine.backends import load_model
from inference.engine.prompt_cache import PromptCache
from inference.tools import get_tool_format
from registry.specs import ModelSpec, Source
from testkit.cache import imported

pytestmark = pytest.mark.model


def engine_for(path, batch_size, cache=True, **load):
    return Engine(materialize=lambda s: path, loader=lambda s, p: load_model(s, p, **load), default_max_tokens=64,
                  prompt_cache=(lambda: PromptCache(max_entries=8, max_bytes=1 << 30)) if cache else None,
                  batch_size=batch_size)


def ask(text, **params):
    return ChatRequest(messages=[{"role": "user", "content": text}],
                       params=SamplingParams(**{"temperature": 0.0, "max_tokens": 8, **params}))


async def answer(engine, spec, request):
    events = [e async for e in engine.stream(spec, request)]
    finished = events[-1]
    assert isinstance(finished, Finished), events
    return "".join(e.text for e in events if isinstance(e, Delta)), finished.finish_reason, \
        finished.completion_tokens, finished.prompt_tokens


def alone_and_batched(path, spec, requests, cache=True, **load):
    async def scenario():
        alone = engine_for(path, 1, cache, **load)
        one_by_one = [await answer(alone, spec, r) for r in requests]
        batched_engine = engine_for(path, 4, cache, **load)
        together = await asyncio.gather(*(answer(batched_engine, spec, r) for r in requests))
        return one_by_one, list(together), batched_engine

    return asyncio.run(scenario())


def test_grammar_penalties_and_bias_per_sequence(smollm2_bf16_dir):
    spec = ModelSpec(id="smol", source=Source("path", str(smollm2_bf16_dir)), context_length=2048)
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}
    grammar = build_grammar(response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
                            tools=None, tool_choice=None, parallel_tool_calls=False,
                            tool_format=get_tool_format("none"))
    requests = [
        ask("Which city is the capital of France? Answer in JSON.", grammar=grammar, max_tokens=12),
        ask("Count from one to ten.", frequency_penalty=1.5, presence_penalty=0.5),
        ask("Count from one to ten."),
        ask("What is the capital of France?", logit_bias={12095: -100.0}),  # " Paris"? any id works
    ]
    alone, batched, engine = alone_and_batched(smollm2_bf16_dir, spec, requests)
    assert batched == alone
    assert engine.batch_peak >= 3
    assert alone[0][0].startswith("{") and '"city"' in alone[0][0]
    assert alone[1][0] != alone[2][0]  # the penalties did change that answer


def test_gemma3_caches_of_different_layer_types_run_in_turn(tiny_ggufs):
    """With full_kv_tokens 48, a short request's sliding layers get a plain KVCache and a
    longer one keeps the rotating cache: the engine must not merge them into one batch. (The
    prompt cache is off: a cached prefix would hand every later request the first one's
    layout, on either path.)"""
    folder = imported(tiny_ggufs("gemma3"))  # the tiny random Gemma 3: sliding window 16
    spec = ModelSpec(id="gemma", source=Source("path", str(folder)), context_length=4096)
    requests = [ask("Hi.", max_tokens=4), ask("Hi.", max_tokens=40), ask("Name a colour.", max_tokens=4)]
    alone, batched, engine = alone_and_batched(folder, spec, requests, cache=False, full_kv_tokens=48)
    assert batched == alone
    model = engine.session.model
    assert [type(c) for c in model.new_cache(20)] != [type(c) for c in model.new_cache(60)]
    assert engine.batch_peak == 1  # each waited for the one before it to drain


@pytest.mark.parametrize("fixture", ["tiny_gemma3_dir", "tiny_qwen3_vl_dir"])
def test_text_only_requests_to_a_vision_model_batch(fixture, request):
    """On mlx-lm's class for the language model (backends/vision_text.py), text-only requests
    to a vision model share decode steps, and each gets what it gets alone."""
    path = request.getfixturevalue(fixture)
    spec = ModelSpec(id="v", source=Source("path", str(path)), backend="vision", context_length=2048)
    requests = [ask(f"Describe picture number {i} in a few words.", max_tokens=10) for i in range(3)]
    alone, batched, engine = alone_and_batched(path, spec, requests)
    assert batched == alone
    assert engine.batch_peak >= 2

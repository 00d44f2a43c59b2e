"""End to end on the second real model: Gemma 3 270M imported from its split PyPI GGUF, through
the real `openai` SDK and a live server, beside SmolLM2: chat, streaming, swaps both ways, and
a forced call in Gemma's own ```tool_code``` format whose result round-trips.
"""
from __future__ import annotations

import json

from functools import partial

import pytest

from testkit.live import LiveServer
from tests import helpers

pytestmark = pytest.mark.e2e

QUESTION = [{"role": "user", "content": "Write one sentence about the sea."}]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture(scope="module")
def gemma_server(tmp_path_factory, smollm2_dir, gemma3_dir):
    root = tmp_path_factory.mktemp("gemma")
    models = {"default": "gemma-3-270m", "models": [
        {"id": "gemma-3-270m", "source": {"path": str(gemma3_dir)}, "tool_format": "gemma_tool_code",
         "capabilities": ["chat", "tools"], "context_length": 4096},
        {"id": "smollm2-135m-instruct", "aliases": ["smollm2"], "source": {"path": str(smollm2_dir)},
         "context_length": 2048},
    ]}
    with LiveServer(root, models).start() as server:
        yield server


@pytest.fixture(scope="module")
def client(gemma_server):
    return gemma_server.openai(timeout=300)


@pytest.fixture(scope="module")
def tokenizer(gemma3_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gemma3_dir))


chat = partial(helpers.chat, model="gemma-3-270m", messages=QUESTION, max_tokens=12)


def test_gemma_answers_with_real_usage_streamed_and_not(client, tokenizer):
    whole = chat(client)
    text = whole.choices[0].message.content
    assert whole.model == "gemma-3-270m" and text.strip()
    prompt = tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True, tokenize=False)
    assert prompt.startswith("<bos><start_of_turn>user\n")  # the project's Gemma 3 template
    assert whole.usage.prompt_tokens == len(tokenizer.encode(prompt, add_special_tokens=False))
    chunks = list(chat(client, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_swaps_between_gemma_and_smollm2_both_ways(client, gemma_server):
    gemma = chat(client).choices[0].message.content
    smol = chat(client, model="smollm2").choices[0].message.content
    assert gemma_server.health()["loaded_model"] == "smollm2-135m-instruct"
    assert chat(client).choices[0].message.content == gemma
    assert chat(client, model="smollm2").choices[0].message.content == smol
    swaps = [r["swapped_from"] for r in gemma_server.log_rows()[-3:]]
    assert swaps == ["gemma-3-270m", "smollm2-135m-instruct", "gemma-3-270m"]


@pytest.mark.parametrize("stream", [False, True])
def test_forced_tool_code_call_round_trips(client, gemma_server, stream):
    ask = [{"role": "user", "content": "What is the weather in Oslo?"}]
    kwargs = {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}
    if stream:
        chunks = list(chat(client, messages=ask, stream=True, max_tokens=40, **kwargs))
        deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
        call_id, name = deltas[0].id, deltas[0].function.name
        arguments = "".join(d.function.arguments or "" for d in deltas)
        assert chunks[-1].choices[0].finish_reason == "tool_calls"
    else:
        message = chat(client, messages=ask, max_tokens=40, **kwargs).choices[0].message
        (call,) = message.tool_calls
        call_id, name, arguments = call.id, call.function.name, call.function.arguments
    assert name == "get_weather" and call_id.startswith("call_")
    assert isinstance(json.loads(arguments)["city"], str)
    row = gemma_server.log_rows()[-1]
    assert row["finish_reason"] == "tool_calls"

    follow_up = [*ask, {"role": "assistant", "content": None, "tool_calls": [
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": call_id, "content": '{"temp_c": 4, "sky": "snow"}'}]
    final = chat(client, messages=follow_up, tools=[WEATHER])
    assert final.choices[0].finish_reason in ("stop", "length", "tool_calls")
    assert final.usage.prompt_tokens > 0

"""A tool round trip rendered into the model's own format, on real loaded models: the SmolLM2
import (its ChatML template knows no tools, so the format writes them) and the two vision
fixtures (Gemma 3's template, and Qwen3-VL's, which renders tools and `<tool_response>` itself).

The prompt is decoded back to text and checked for what each format requires: the call as the
model would have written it, and the result where the format puts results.
"""
from __future__ import annotations

import pytest

from registry.specs import parse_spec

pytestmark = pytest.mark.model

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                   "required": ["city"]}}}]
ROUND_TRIP = [
    {"role": "user", "content": "What is the weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_abc123", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris", "days": 2}'}}]},
    {"role": "tool", "tool_call_id": "call_abc123", "content": '{"temp_c": 18, "sky": "clear"}'},
]

QWEN_CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}\n</tool_call>'
QWEN_RESULT = '<tool_response>\n{"temp_c": 18, "sky": "clear"}\n</tool_response>'
GEMMA_CALL = '```tool_code\nget_weather(city="Paris", days=2)\n```'
GEMMA_RESULT = '```tool_output\n{"temp_c": 18, "sky": "clear"}\n```'


def load(model_id: str, folder, backend: str, tool_format: str):
    from inference.engine.backends import load_model

    spec = parse_spec({"id": model_id, "source": {"path": str(folder)}, "backend": backend,
                       "tool_format": tool_format}, 0)
    return load_model(spec, folder)


def rendered(model) -> str:
    tokenizer = getattr(model, "tokenizer")
    return tokenizer.decode(model.render_prompt(ROUND_TRIP, TOOLS).tokens)


@pytest.fixture(scope="module")
def smollm2_models(smollm2_dir):
    return {fmt: load(f"smollm2-{fmt}", smollm2_dir, "text", fmt) for fmt in ("qwen_tool_call", "gemma_tool_code")}


def test_qwen_format_on_a_template_without_tools(smollm2_models):
    text = rendered(smollm2_models["qwen_tool_call"])
    assert '"name": "get_weather"' in text and "<tools>" in text  # the tools are described
    assert QWEN_CALL in text and QWEN_RESULT in text
    assert text.index(QWEN_CALL) < text.index(QWEN_RESULT)
    assert text.endswith("<|im_start|>assistant\n")


def test_gemma_format_on_a_template_without_tools(smollm2_models):
    text = rendered(smollm2_models["gemma_tool_code"])
    assert 'def get_weather(city: str, days: int = None):\n    """Weather for a city.' in text
    assert GEMMA_CALL in text and GEMMA_RESULT in text
    assert text.index(GEMMA_CALL) < text.index(GEMMA_RESULT)


def test_the_families_own_templates_render_the_round_trip(tiny_gemma3_dir, tiny_qwen3_vl_dir):
    gemma = rendered(load("g", tiny_gemma3_dir, "vision", "gemma_tool_code"))
    assert GEMMA_CALL in gemma and GEMMA_RESULT in gemma
    assert gemma.rstrip().endswith("<start_of_turn>model")
    qwen = rendered(load("q", tiny_qwen3_vl_dir, "vision", "qwen_tool_call"))
    assert QWEN_CALL in qwen and QWEN_RESULT in qwen
    assert "# Tools" in qwen  # Qwen's own template wrote the tools block

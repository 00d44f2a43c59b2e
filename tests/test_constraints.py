"""Constrained decoding without running a model: the grammars accept exactly what the schema
and the tool formats allow (checked token by token on SmolLM2's real tokenizer), the MLX
processor masks logits accordingly, and bad schemas or impossible tool choices are 400s."""
import json

import llguidance
import mlx.core as mx
import pytest

from inference.constraints import ConstraintError, Grammars, build_grammar
from inference.tools import get_tool_format
from testkit.schemas import PROFILE_EXAMPLE, PROFILE_SCHEMA

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {
        "type": "object", "properties": {"zone": {"type": "string"}, "format": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "ping"}},
]
SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "profile", "schema": PROFILE_SCHEMA}}


@pytest.fixture(scope="module")
def grammars(tokenizer):
    return Grammars(tokenizer, [tokenizer.convert_tokens_to_ids("<|im_end|>")])


def grammar(tool_format="none", response_format=None, tools=None, tool_choice=None, parallel=True):
    return build_grammar(response_format=response_format, tools=tools, tool_choice=tool_choice,
                         parallel_tool_calls=parallel, tool_format=get_tool_format(tool_format))


def accepts(grammars, tokenizer, grammar_text: str, text: str) -> bool:
    """Whether the grammar takes `text` whole and may end there."""
    matcher = grammars.matcher(grammar_text)
    tokens = tokenizer.encode(text, add_special_tokens=False)
    return matcher.try_consume_tokens(tokens) == len(tokens) and matcher.is_accepting()


@pytest.mark.model
def test_schema_grammar_accepts_valid_documents_only(grammars, tokenizer):
    g = grammar(response_format=SCHEMA_FORMAT)
    assert accepts(grammars, tokenizer, g, json.dumps(PROFILE_EXAMPLE))
    assert not accepts(grammars, tokenizer, g, json.dumps({**PROFILE_EXAMPLE, "role": "owner"}))  # enum
    assert not accepts(grammars, tokenizer, g, json.dumps({**PROFILE_EXAMPLE, "age": 200}))  # maximum
    assert not accepts(grammars, tokenizer, g, json.dumps({**PROFILE_EXAMPLE, "tags": []}))  # minItems
    missing = {k: v for k, v in PROFILE_EXAMPLE.items() if k != "address"}
    assert not accepts(grammars, tokenizer, g, json.dumps(missing))  # required
    assert not accepts(grammars, tokenizer, g, json.dumps(PROFILE_EXAMPLE, indent=2))  # one layout: no padding


@pytest.mark.model
def test_json_object_takes_any_object_but_nothing_else(grammars, tokenizer):
    g = grammar(response_format={"type": "json_object"})
    assert accepts(grammars, tokenizer, g, '{"a": [1, {"b": null}]}')
    assert not accepts(grammars, tokenizer, g, "[1, 2]")
    assert not accepts(grammars, tokenizer, g, "Sure! {}")


@pytest.mark.parametrize("fmt,text,expected", [
    ("qwen_tool_call", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n'
     "</tool_call>", [("get_weather", {"city": "Paris", "unit": "celsius"})]),
    ("qwen_tool_call", '<tool_call>\n{"name": "ping", "arguments": {}}\n</tool_call>\n<tool_call>\n'
     '{"name": "get_time", "arguments": {"format": "iso"}}\n</tool_call>', [("ping", {}), ("get_time", {"format": "iso"})]),
    ("gemma_tool_code", '```tool_code\nget_weather(city="Oslo", unit="fahrenheit")\n```',
     [("get_weather", {"city": "Oslo", "unit": "fahrenheit"})]),
    ("gemma_tool_code", '```tool_code\nget_time(format="iso")\nping()\n```', [("get_time", {"format": "iso"}), ("ping", {})]),
])
@pytest.mark.model
def test_required_call_grammar_accepts_what_the_format_parses(grammars, tokenizer, fmt, text, expected):
    assert accepts(grammars, tokenizer, grammar(fmt, tools=TOOLS, tool_choice="required"), text)
    parsed = get_tool_format(fmt).parse(text, TOOLS)
    assert [(c.name, json.loads(c.arguments)) for c in parsed.calls] == expected


@pytest.mark.parametrize("fmt,text", [
    ("qwen_tool_call", "The weather is nice."),  # no call at all
    ("qwen_tool_call", '<tool_call>\n{"name": "get_weather", "arguments": {"unit": "celsius"}}\n</tool_call>'),  # required
    ("qwen_tool_call", '<tool_call>\n{"name": "get_wether", "arguments": {"city": "x"}}\n</tool_call>'),  # unknown
    ("gemma_tool_code", '```tool_code\nget_weather(unit="celsius")\n```'),
    ("gemma_tool_code", '```tool_code\nget_weather(city="Oslo", unit="kelvin")\n```'),
    ("gemma_tool_code", '```tool_code\nget_weather(city="Oslo", country="NO")\n```'),
])
@pytest.mark.model
def test_required_call_grammar_rejects_invalid_calls(grammars, tokenizer, fmt, text):
    assert not accepts(grammars, tokenizer, grammar(fmt, tools=TOOLS, tool_choice="required"), text)


@pytest.mark.parametrize("fmt,one,two", [
    ("qwen_tool_call", '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>',
     '\n<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'),
    ("gemma_tool_code", "```tool_code\nget_time()", "\nget_time()"),
])
@pytest.mark.model
def test_named_choice_and_no_parallel_calls(grammars, tokenizer, fmt, one, two):
    named = {"type": "function", "function": {"name": "get_time"}}
    closer = "\n```" if fmt == "gemma_tool_code" else ""
    single = grammar(fmt, tools=TOOLS, tool_choice=named, parallel=False)
    assert accepts(grammars, tokenizer, single, one + closer)
    assert not accepts(grammars, tokenizer, single, one + two + closer)
    assert accepts(grammars, tokenizer, grammar(fmt, tools=TOOLS, tool_choice=named), one + two + closer)
    other = one.replace("get_time", "ping")
    assert not accepts(grammars, tokenizer, single, other + closer)


@pytest.mark.model
def test_auto_with_a_schema_allows_a_call_or_the_answer(grammars, tokenizer):
    g = grammar("qwen_tool_call", response_format=SCHEMA_FORMAT, tools=TOOLS, tool_choice="auto")
    assert accepts(grammars, tokenizer, g, json.dumps(PROFILE_EXAMPLE))
    assert accepts(grammars, tokenizer, g, '<tool_call>\n{"name": "ping", "arguments": {}}\n</tool_call>')
    assert not accepts(grammars, tokenizer, g, "Hello")


def test_nothing_forced_means_no_grammar():
    assert grammar("qwen_tool_call", tools=TOOLS, tool_choice="auto") is None
    assert grammar(response_format={"type": "text"}) is None


@pytest.mark.parametrize("kwargs,param", [
    ({"tool_format": "none", "tools": TOOLS, "tool_choice": "required"}, "tool_choice"),
    ({"tool_format": "gemma_tool_code", "tools": [{"type": "function", "function": {"name": "get-time"}}],
      "tool_choice": "required"}, "tools[0].function.name"),
    ({"tool_format": "qwen_tool_call", "tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"a": {"not": {"type": "string"}}}}}}], "tool_choice": "required"},
     "tools[0].function.parameters"),
])
def test_calls_that_cannot_be_enforced_name_the_param(kwargs, param):
    with pytest.raises(ConstraintError) as caught:
        grammar(**kwargs)
    assert caught.value.param == param


@pytest.mark.model
def test_processor_masks_logits_to_the_grammar(grammars, tokenizer):
    """On flat logits the greedy choice is always an allowed token; once the document is
    complete only the end token remains."""
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    processor = grammars.processor(grammar(response_format={"type": "json_object"}))
    prompt = mx.array(tokenizer.encode("hi", add_special_tokens=False))
    masked = processor(prompt, mx.zeros((1, len(tokenizer)), dtype=mx.float32))
    allowed = [i for i, v in enumerate(masked[0].tolist()) if v > float("-inf")]
    assert allowed and all(tokenizer.decode([i]).lstrip().startswith("{") for i in allowed)
    document = tokenizer.encode('{"a": 1}', add_special_tokens=False)
    tokens = prompt
    for token in document:
        tokens = mx.concatenate([tokens, mx.array([token])])
        masked = processor(tokens, mx.zeros((1, len(tokenizer) + 7), dtype=mx.float32))  # padded rows too
    allowed = [i for i, v in enumerate(masked[0].tolist()) if v > float("-inf")]
    assert allowed == [end]


@pytest.mark.model
def test_compiled_grammars_are_cached_and_copied(grammars):
    g = grammar(response_format={"type": "json_object"})
    first, second = grammars.matcher(g), grammars.matcher(g)
    assert first is not second
    assert isinstance(first, llguidance.LLMatcher) and not first.is_error()


@pytest.mark.model
def test_a_forced_qwen_call_walks_through_on_a_tokenizer_with_an_added_tool_call_token(tiny_qwen3_vl_dir):
    """Qwen tokenizers add `<tool_call>` as a non-special token: the mask must never offer
    a token the matcher then refuses. Greedy on flat logits walks the grammar to its end."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_qwen3_vl_dir))
    assert tokenizer.convert_tokens_to_ids("<tool_call>") >= 49152  # the added token is there
    end = tokenizer.eos_token_id
    tools = [{"type": "function", "function": {"name": "get_time", "parameters": {
        "type": "object", "properties": {"zone": {"enum": ["UTC", "CET"]}}, "required": ["zone"],
        "additionalProperties": False}}}]
    processor = Grammars(tokenizer, [end]).processor(
        grammar("qwen_tool_call", tools=tools, tool_choice="required", parallel=False))
    prompt = tokenizer.encode("hi", add_special_tokens=False)
    tokens = mx.array(prompt)
    for _ in range(200):
        token = mx.argmax(processor(tokens, mx.zeros((1, len(tokenizer)))), axis=-1)
        if token.item() == end:
            break
        tokens = mx.concatenate([tokens, token])
    else:
        pytest.fail(f"the grammar never ended: {tokenizer.decode(tokens.tolist())!r}")
    text = tokenizer.decode(tokens[len(prompt):].tolist())
    (call,) = get_tool_format("qwen_tool_call").parse(text, tools).calls
    assert call.name == "get_time" and json.loads(call.arguments)["zone"] in ("UTC", "CET")

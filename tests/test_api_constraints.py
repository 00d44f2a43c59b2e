"""response_format and tool_choice through the API layer: what cannot be enforced is a 400
OpenAI error naming the param, before any model runs; what can is accepted."""
import pytest

from tests.helpers import OK_MESSAGES, post

pytestmark = pytest.mark.django_db

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                          "required": ["city"]}}}]
OBJECT = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


def schema_format(schema, **extra):
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, **extra}}


@pytest.fixture
def models(models_yaml, serve):
    for name, fmt in (("plain", "none"), ("qwen-like", "qwen_tool_call"), ("gemma-like", "gemma_tool_code")):
        models_yaml(name, tool_format=fmt)
    return serve(['{"a": 1}'])


def post_plain(client, **body):
    return post(client, {"model": "plain", "messages": OK_MESSAGES, **body})


BAD = [
    ("unknown type", {"response_format": {"type": "xml"}}, "response_format.type", "xml"),
    ("json_schema without name", {"response_format": {"type": "json_schema", "json_schema": {"schema": OBJECT}}},
     "response_format.json_schema.name", "letters"),
    ("schema not an object", {"response_format": schema_format([1])}, "response_format.json_schema.schema",
     "JSON Schema object"),
    ("not JSON Schema", {"response_format": schema_format({"type": "objekt"})},
     "response_format.json_schema.schema", "not a valid JSON Schema at type"),
    ("unsupported keyword", {"response_format": schema_format({"type": "object", "properties": {
        "a": {"not": {"type": "string"}}}})}, "response_format.json_schema.schema", '"not"'),
    ("look-around pattern", {"response_format": schema_format({"type": "string", "pattern": "(?=a)b"})},
     "response_format.json_schema.schema", "look-around"),
    ("strict not a boolean", {"response_format": schema_format(OBJECT, strict="yes")},
     "response_format.json_schema.strict", "boolean"),
    ("tool_choice unknown word", {"tools": TOOLS, "tool_choice": "always"}, "tool_choice", "required"),
    ("required without tools", {"tool_choice": "required"}, "tool_choice", "tools"),
    ("named tool not offered", {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "tool_choice", "nope"),
    ("required on a model without a tool format", {"tools": TOOLS, "tool_choice": "required"}, "tool_choice",
     "'none'"),
    ("tool schema that cannot be enforced", {"model": "qwen-like", "tool_choice": "required", "tools": [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
            "x": {"type": "string", "format": "zipcode"}}}}}]}, "tools[0].function.parameters", "zipcode"),
    ("gemma call name that is not Python", {"model": "gemma-like", "tool_choice": "required", "tools": [
        {"type": "function", "function": {"name": "get-weather"}}]}, "tools[0].function.name", "identifier"),
    ("parallel_tool_calls not a boolean", {"tools": TOOLS, "parallel_tool_calls": "no"}, "parallel_tool_calls", ""),
]


@pytest.mark.parametrize("name,body,param,words", BAD, ids=[b[0] for b in BAD])
def test_what_cannot_be_enforced_is_a_400_naming_it(client, models, name, body, param, words):
    response = post_plain(client, **body)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param, error
    assert words in error["message"], error


# Each body with what its grammar must hold (llguidance's lark syntax, inference/constraints/grammar.py).
ENFORCED = [
    ({"response_format": {"type": "json_object"}}, ['%json {"type": "object"']),
    ({"response_format": schema_format(OBJECT, strict=True)},
     ['%json {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]']),
    ({"model": "qwen-like", "tools": TOOLS, "tool_choice": "required", "parallel_tool_calls": False},
     ['calls: call_block\n', 'call_block: "<tool_call>\\n" call "\\n</tool_call>"', '{"const": "get_weather"}']),
    ({"model": "gemma-like", "tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
     ['"```tool_code\\n" call', 'call_0: "get_weather("']),
    ({"tools": TOOLS, "tool_choice": "none", "response_format": {"type": "json_object"}}, ['%json {"type": "object"']),
]


@pytest.mark.parametrize("body,fragments", ENFORCED,
                         ids=["json_object", "json_schema", "qwen-required-one-call", "gemma-named", "none-and-json"])
def test_what_can_be_enforced_is_accepted(client, models, body, fragments):
    """Accepted, and the grammar reached the engine's request (the scripted backend ignores it, so
    the answer alone would not show it)."""
    response = post_plain(client, **body)
    assert response.status_code == 200, response.content
    (request,) = models.requests
    grammar = request.params.grammar
    assert grammar is not None and grammar.startswith("start: "), grammar
    for fragment in fragments:
        assert fragment in grammar, (fragment, grammar)
    if body.get("tool_choice") == "none":
        assert request.tools is None and "call" not in grammar

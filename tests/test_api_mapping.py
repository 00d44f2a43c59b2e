"""The API layer's pure mappings, on their own: an OpenAI body -> the engine's ChatRequest
(build_chat_request), an engine error -> the OpenAI error (api_error_of), and DRF's nested
validation detail -> (param, message) (first_validation_error). The HTTP tests cover them only
through a whole request."""
from __future__ import annotations

import pytest
from rest_framework.exceptions import ErrorDetail

from inference.api.chat import build_chat_request
from inference.api.generation import api_error_of
from inference.api.errors import (
    InvalidRequest, QueueFull, ServerError, ServiceUnavailable, first_validation_error, from_validation_error,
)
from inference.api.serializers import ChatCompletionSerializer
from inference.engine.types import (
    ChatRequest, ContextLengthExceeded, EngineError, ImagesNotPrepared, ModelLoadError, SamplingParams,
    UnsupportedContent,
)
from inference.engine.types import QueueFull as EngineQueueFull
from inference.tools import get_tool_format
from tests.helpers import OK_MESSAGES

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def build(data: dict, tool_format: str = "none") -> ChatRequest:
    """build_chat_request for a model of that tool format (the view passes the model's)."""
    return build_chat_request(data, tool_format=get_tool_format(tool_format))


def params_of(**body) -> SamplingParams:
    return build({"messages": OK_MESSAGES, **body}).params


# --- build_chat_request -----------------------------------------------------------------------------


def test_a_bare_body_gets_the_defaults():
    assert build({"messages": OK_MESSAGES}) == ChatRequest(messages=OK_MESSAGES)
    assert params_of() == SamplingParams(max_tokens=None, temperature=1.0, top_p=1.0, stop=(), seed=None,
                                         presence_penalty=0.0, frequency_penalty=0.0, logit_bias={}, grammar=None)


def test_nulls_are_the_defaults_too():
    body = {key: None for key in ("temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed",
                                  "presence_penalty", "frequency_penalty", "logit_bias", "tools", "tool_choice")}
    assert build({"messages": OK_MESSAGES, **body}) == ChatRequest(messages=OK_MESSAGES)


def test_sampling_fields_are_carried_over():
    params = params_of(temperature=0.3, top_p=0.9, stop=["\n", "END"], seed=7, presence_penalty=0.5,
                       frequency_penalty=-0.25, logit_bias={"42": -100})
    assert (params.temperature, params.top_p, list(params.stop), params.seed) == (0.3, 0.9, ["\n", "END"], 7)
    assert (params.presence_penalty, params.frequency_penalty, params.logit_bias) == (0.5, -0.25, {"42": -100})


def test_temperature_zero_stays_zero():
    assert params_of(temperature=0).temperature == 0.0


@pytest.mark.parametrize("temperature", [None, 0.7, 2.0])
def test_top_p_zero_is_greedy(temperature):
    """top_p 0 keeps only the most likely token: temperature 0, whatever it said, and no nucleus cut."""
    params = params_of(top_p=0, temperature=temperature)
    assert (params.temperature, params.top_p) == (0.0, 1.0)


@pytest.mark.parametrize("body,max_tokens", [
    ({}, None),
    ({"max_tokens": 50}, 50),
    ({"max_completion_tokens": 30}, 30),
    ({"max_tokens": 50, "max_completion_tokens": 30}, 30),
    ({"max_tokens": 30, "max_completion_tokens": 50}, 50),
    ({"max_tokens": 50, "max_completion_tokens": None}, 50),
])
def test_max_completion_tokens_wins_over_max_tokens(body, max_tokens):
    assert params_of(**body).max_tokens == max_tokens


def test_tools_reach_the_request_unforced_without_a_grammar():
    request = build({"messages": OK_MESSAGES, "tools": TOOLS}, "qwen_tool_call")
    assert request.tools == TOOLS and request.params.grammar is None


def test_tool_choice_none_hides_the_tools_from_the_model():
    request = build({"messages": OK_MESSAGES, "tools": TOOLS, "tool_choice": "none"}, "qwen_tool_call")
    assert request.tools is None and request.params.grammar is None


def test_a_forced_call_is_a_grammar_in_the_models_tool_format():
    request = build({"messages": OK_MESSAGES, "tools": TOOLS, "tool_choice": "required"}, "qwen_tool_call")
    assert request.tools == TOOLS
    assert '"<tool_call>\\n"' in request.params.grammar and '{"const": "get_weather"}' in request.params.grammar
    gemma = build({"messages": OK_MESSAGES, "tools": TOOLS, "tool_choice": "required"}, "gemma_tool_code")
    assert 'call_0: "get_weather("' in gemma.params.grammar


def test_response_format_becomes_the_grammar():
    grammar = params_of(response_format={"type": "json_object"}).grammar
    assert grammar.startswith("start: ") and '%json {"type": "object"' in grammar


@pytest.mark.parametrize("tool_format,body,param", [
    ("none", {"tools": TOOLS, "tool_choice": "required"}, "tool_choice"),
    ("qwen_tool_call", {"tool_choice": "required", "tools": [{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "string", "format": "zipcode"}}}}}]},
     "tools[0].function.parameters"),
    ("gemma_tool_code", {"tool_choice": "required", "tools": [{"type": "function", "function": {"name": "get-weather"}}]},
     "tools[0].function.name"),
], ids=["no-tool-format", "unenforceable-schema", "gemma-name-not-python"])
def test_what_cannot_be_enforced_is_an_invalid_request_naming_the_param(tool_format, body, param):
    with pytest.raises(InvalidRequest) as raised:
        build({"messages": OK_MESSAGES, **body}, tool_format)
    assert raised.value.param == param and raised.value.status_code == 400
    assert raised.value.__suppress_context__  # raised `from None`: the constraint error stays out of the trace


# --- api_error_of -----------------------------------------------------------------------------------


def test_context_length_is_a_400_on_messages():
    error = api_error_of(ContextLengthExceeded("4100 tokens, the context holds 4096"))
    assert type(error) is InvalidRequest and error.status_code == 400
    assert (error.code, error.param, error.message) == (
        "context_length_exceeded", "messages", "4100 tokens, the context holds 4096")


@pytest.mark.parametrize("kind,code", [(UnsupportedContent, "unsupported_content"), (ImagesNotPrepared, "invalid_image")])
def test_content_errors_are_a_400_naming_the_part(kind, code):
    error = api_error_of(kind("that part cannot be used", param="messages[2].content[1]"))
    assert type(error) is InvalidRequest and error.status_code == 400
    assert (error.code, error.param, error.message) == (code, "messages[2].content[1]", "that part cannot be used")
    assert api_error_of(kind("no param")).param is None


def test_a_model_that_fails_to_load_is_a_503():
    error = api_error_of(ModelLoadError("could not load broken"))
    assert type(error) is ServiceUnavailable and error.status_code == 503
    assert (error.code, error.error_type, error.message) == ("model_load_failed", "server_error", "could not load broken")


def test_a_full_queue_is_a_429_with_retry_after():
    error = api_error_of(EngineQueueFull("4 requests wait", retry_after=3))
    assert type(error) is QueueFull and error.status_code == 429
    assert (error.code, error.error_type, error.headers) == ("queue_full", "rate_limit_exceeded", {"Retry-After": "3"})
    assert error.message == "4 requests wait"


def test_any_other_engine_error_is_a_500_keeping_its_code():
    class Exotic(EngineError):
        code = "exotic_failure"

    assert (api_error_of(EngineError("boom")).code, api_error_of(EngineError("boom")).status_code) == (
        "engine_error", 500)
    error = api_error_of(Exotic("odd"))
    assert type(error) is ServerError and (error.code, error.message, error.param) == ("exotic_failure", "odd", None)


# --- first_validation_error -------------------------------------------------------------------------


@pytest.mark.parametrize("detail,expected", [
    ("Invalid data.", ("", "Invalid data.")),
    (["first", "second"], ("", "first")),
    ({"model": ["This field is required."]}, ("model", "This field is required.")),
    ({"non_field_errors": ["No body."]}, ("", "No body.")),
    ({"response_format": {"non_field_errors": ["Bad type."]}}, ("response_format", "Bad type.")),
    ({"messages": {0: {"content": ["Not a string."]}}}, ("messages[0].content", "Not a string.")),
    ({"messages": [{}, {"role": ["Bad role."]}]}, ("messages[1].role", "Bad role.")),
    ({"stop": [[], ["Too long."]]}, ("stop[1]", "Too long.")),
    ({"tools": [{}, {}, {"function": {"name": ["Required."]}}]}, ("tools[2].function.name", "Required.")),
    ({"a": [None, "", "late"]}, ("a", "late")),
    ({"temperature": [ErrorDetail("Too high.", code="max_value")]}, ("temperature", "Too high.")),
])
def test_the_first_error_and_its_param_path(detail, expected):
    assert first_validation_error(detail) == expected


def test_on_the_serializers_real_detail():
    serializer = ChatCompletionSerializer(data={"model": "m", "messages": [
        {"role": "user", "content": "ok"}, {"role": "wizard", "content": "x"}]})
    assert not serializer.is_valid()
    param, message = first_validation_error(serializer.errors)
    assert param == "messages[1].role" and message
    error = from_validation_error(serializer.errors)
    assert error.param == "messages[1].role" and error.message == f"messages[1].role: {message}"


def test_without_a_param_the_message_stands_alone():
    error = from_validation_error({"non_field_errors": ["Empty body."]})
    assert (error.param, error.message) == (None, "Empty body.")

"""Bad input gets a 400 OpenAI error body and a log row, without touching a model."""
import json

import pytest

from inference.models import RequestLog
from tests.helpers import OK_MESSAGES, URL, assert_openai_error, post

pytestmark = pytest.mark.django_db

BAD_BODIES = [
    ("not json", "{model: x", None),
    ("array body", "[1, 2]", None),
    ("invalid utf-8", b"\xff\xfe{\"model\": 1}", None),
    ("utf-16 json", json.dumps({"model": "smollm2", "messages": OK_MESSAGES}).encode("utf-16"), None),
    ("deeply nested json", b"[" * 100_000 + b"]" * 100_000, None),
    ("too many messages", {"model": "smollm2", "messages": OK_MESSAGES * 10_001}, "messages"),
    ("missing model", {"messages": OK_MESSAGES}, "model"),
    ("model not a string", {"model": 7, "messages": OK_MESSAGES}, "model"),
    ("missing messages", {"model": "smollm2"}, "messages"),
    ("empty messages", {"model": "smollm2", "messages": []}, "messages"),
    ("messages not a list", {"model": "smollm2", "messages": "hi"}, "messages"),
    ("unknown role", {"model": "smollm2", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ("user without content", {"model": "smollm2", "messages": [{"role": "user"}]}, "messages[0].content"),
    ("content a number", {"model": "smollm2", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ("unknown part type", {"model": "smollm2", "messages": [{"role": "user", "content": [{"type": "video"}]}]},
     "messages[0].content"),
    ("tool without id", {"model": "smollm2", "messages": [{"role": "tool", "content": "x"}]},
     "messages[0].tool_call_id"),
    ("temperature too high", {"model": "smollm2", "messages": OK_MESSAGES, "temperature": 3}, "temperature"),
    ("temperature a string", {"model": "smollm2", "messages": OK_MESSAGES, "temperature": "0.5"}, "temperature"),
    ("top_p above one", {"model": "smollm2", "messages": OK_MESSAGES, "top_p": 1.5}, "top_p"),
    ("negative max_tokens", {"model": "smollm2", "messages": OK_MESSAGES, "max_tokens": -1}, "max_tokens"),
    ("zero max_completion_tokens", {"model": "smollm2", "messages": OK_MESSAGES, "max_completion_tokens": 0},
     "max_completion_tokens"),
    ("huge max_tokens", {"model": "smollm2", "messages": OK_MESSAGES, "max_tokens": 10**30}, "max_tokens"),
    ("float max_tokens", {"model": "smollm2", "messages": OK_MESSAGES, "max_tokens": 1.5}, "max_tokens"),
    ("n over MLX_SERVER_MAX_CHOICES", {"model": "smollm2", "messages": OK_MESSAGES, "n": 9}, "n"),
    ("n of zero", {"model": "smollm2", "messages": OK_MESSAGES, "n": 0}, "n"),
    ("stream a string", {"model": "smollm2", "messages": OK_MESSAGES, "stream": "yes"}, "stream"),
    ("five stops", {"model": "smollm2", "messages": OK_MESSAGES, "stop": list("abcde")}, "stop"),
    ("stop a number", {"model": "smollm2", "messages": OK_MESSAGES, "stop": 3}, "stop"),
    ("seed a string", {"model": "smollm2", "messages": OK_MESSAGES, "seed": "7"}, "seed"),
    ("penalty out of range", {"model": "smollm2", "messages": OK_MESSAGES, "presence_penalty": 9}, "presence_penalty"),
    ("logit_bias bad key", {"model": "smollm2", "messages": OK_MESSAGES, "logit_bias": {"abc": 1}}, "logit_bias"),
    ("stream_options without stream", {"model": "smollm2", "messages": OK_MESSAGES,
                                       "stream_options": {"include_usage": True}}, "stream_options"),
    ("tool without name", {"model": "smollm2", "messages": OK_MESSAGES,
                           "tools": [{"type": "function", "function": {}}]}, "tools[0].function"),
]


@pytest.mark.parametrize("name, body, param", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_body_gets_400_with_param_and_a_log_row(client, name, body, param):
    response = post(client, body)
    error = assert_openai_error(response, 400, param=param)
    assert error["type"] == "invalid_request_error"
    row = RequestLog.objects.get()
    assert row.status_code == 400 and row.outcome == "error"
    assert row.endpoint == URL and row.error == error["message"]


def test_unknown_model_is_404_model_not_found(client):
    error = assert_openai_error(post(client, {"model": "no-such-model", "messages": OK_MESSAGES}), 404,
                                param="model", code="model_not_found")
    assert "no-such-model" in error["message"]
    assert RequestLog.objects.get().error_code == "model_not_found"


def test_registered_but_absent_model_is_404_not_available(client, models_yaml, tmp_path):
    models_yaml("ghost", source={"path": str(tmp_path / "nothing-here")})
    error = assert_openai_error(post(client, {"model": "ghost", "messages": OK_MESSAGES}), 404,
                                code="model_not_available")
    assert "config.json" in error["message"]
    listed = client.get("/v1/models").json()["data"]
    assert listed[0]["id"] == "ghost" and listed[0]["available"] is False


def test_get_on_chat_is_405(client):
    assert_openai_error(client.get(URL), 405, code="method_not_allowed")


def test_unknown_url_is_json_404_and_logged(client):
    assert_openai_error(client.get("/v1/nothing"), 404, code="unknown_url")
    assert RequestLog.objects.get().status_code == 404


def test_too_large_body_is_413(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = {"model": "smollm2", "messages": [{"role": "user", "content": "x" * 5000}]}
    assert_openai_error(post(client, body), 413, code="request_too_large")

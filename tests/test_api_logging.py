"""Every request is logged, failures included: an unexpected exception in the chat view, before
or during a stream, is a 500 row naming the exception and OpenAI's generic error to the client,
never a "client disconnected" row, and the next request is served as usual."""
import json

import pytest
from django.test import Client

import inference.api.generation as generation
import inference.api.views as views
from inference.models import RequestLog
from tests.helpers import URL, post, sse_frames

pytestmark = pytest.mark.django_db

BODY = {"model": "scripted", "messages": [{"role": "user", "content": "hi"}]}
GENERIC = {"message": "The server had an error while processing your request.", "type": "server_error",
           "param": None, "code": "internal_error"}


@pytest.fixture
def scripted(models_yaml, serve):
    models_yaml("scripted")
    serve(["Hel", "lo"])


def post_body(client, **over):
    return post(client, {**BODY, **over})


def assert_served_after(client):
    """The failure broke nothing: the next request is answered and logged as usual."""
    RequestLog.objects.all().delete()
    response = post_body(client)
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "Hello"
    assert RequestLog.objects.get().status_code == 200


def assert_500_row(detail: str) -> RequestLog:
    row = RequestLog.objects.get()
    assert (row.status_code, row.outcome, row.error_code) == (500, "error", "internal_error")
    assert row.error == detail
    assert row.endpoint == URL and row.request_id.startswith("chatcmpl-")
    return row


def test_an_exception_before_generation_is_a_500_row(client, scripted, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom before the engine")

    with monkeypatch.context() as patch:
        patch.setattr(views, "build_chat_request", broken)
        response = post_body(client)
    assert response.status_code == 500 and response.json() == {"error": GENERIC}
    row = assert_500_row("RuntimeError: boom before the engine")
    assert row.resolved_model == "scripted" and json.loads(row.response_body) == {"error": GENERIC}
    assert_served_after(client)


def test_an_exception_during_a_whole_answer_is_a_500_row(client, scripted, monkeypatch):
    def broken(self, text):
        raise ValueError("parser bug")

    with monkeypatch.context() as patch:
        patch.setattr(generation.PassthroughParser, "feed", broken)
        response = post_body(client)
    assert response.status_code == 500 and response.json() == {"error": GENERIC}
    assert_500_row("ValueError: parser bug")
    assert_served_after(client)


@pytest.mark.django_db(transaction=True)  # the stream writes its row from another thread
def test_an_exception_inside_a_stream_is_an_error_not_a_disconnect(client, scripted, monkeypatch):
    def broken(self, text):
        raise ValueError("parser bug mid-stream")

    with monkeypatch.context() as patch:
        patch.setattr(generation.PassthroughParser, "feed", broken)
        frames = sse_frames({**BODY, "stream": True})
    assert frames[-1] == "[DONE]"
    assert json.loads(frames[0])["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert json.loads(frames[-2]) == {"error": GENERIC}
    row = assert_500_row("ValueError: parser bug mid-stream")
    assert row.stream is True and row.finish_reason != "cancelled"
    assert_served_after(client)


def test_an_exception_in_a_plain_view_is_a_500_row_too(scripted, monkeypatch):
    def broken():
        raise RuntimeError("registry bug")

    monkeypatch.setattr(views, "get_registry", broken)
    response = Client(raise_request_exception=False).get("/v1/models")
    assert response.status_code == 500 and response.json() == {"error": GENERIC}
    row = RequestLog.objects.get()
    assert (row.status_code, row.error_code, row.error) == (500, "internal_error", GENERIC["message"])


def test_the_row_takes_code_and_message_from_the_error_not_the_body(client, scripted):
    response = client.get("/v1/models/nothing-like-it")
    assert response.status_code == 404
    row = RequestLog.objects.get()
    assert row.error_code == "model_not_found" and row.error == response.json()["error"]["message"]
    assert row.request_id.startswith("req-")

"""Helpers the test modules share; the fixtures are in conftest.py (and fixtures_models.py for
the real models). A test module imports from here, never from another test module."""
from __future__ import annotations

import asyncio
import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from referencing.jsonschema import DRAFT202012 as _DRAFT

URL = "/v1/chat/completions"
OK_MESSAGES = [{"role": "user", "content": "hi"}]


def post(client, body, content_type="application/json"):
    """POST `body` (a dict as JSON, or raw str/bytes as given) to /v1/chat/completions through
    Django's test client; an answer is held to OpenAI's CreateChatCompletionResponse schema, an
    error to ErrorResponse."""
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    response = client.post(URL, data=data, content_type=content_type)
    if response.get("Content-Type", "").startswith("application/json"):
        ok = response.status_code == 200
        assert_schema(response.json(), "openai/CreateChatCompletionResponse" if ok else "openai/ErrorResponse")
    return response


def sse_frames(body: dict, url: str = URL, chunk_schema: str = "openai/CreateChatCompletionStreamResponse") -> list[str]:
    """POST `body` (with stream: true) to `url` through Django's AsyncClient, read in the loop that
    made the stream; the status must be 200. Returns the `data:` payloads, "[DONE]" included, each
    chunk held to `chunk_schema` (chat's by default)."""
    from django.test import AsyncClient

    async def read():
        response = await AsyncClient().post(url, content_type="application/json", data=json.dumps(body))
        assert response.status_code == 200
        return b"".join([chunk async for chunk in response.streaming_content]).decode()

    text = asyncio.run(read())
    frames = [line[len("data: "):] for line in text.split("\n\n") if line.startswith("data: ")]
    for frame in frames[:-1] if frames and frames[-1] == "[DONE]" else frames:
        chunk = json.loads(frame)
        assert_schema(chunk, "openai/ErrorResponse" if "error" in chunk else chunk_schema)
    return frames


def assert_openai_error(response, status, param=None, code=None) -> dict:
    """The response is an OpenAI error body of that status (and param/code when given); returns the error."""
    assert response.status_code == status, response.content
    assert_schema(response.json(), "openai/ErrorResponse")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    return error


def chat(client, model: str, messages: list[dict], **kw: Any):
    """One chat completion through the openai SDK against a live server, greedy unless `kw` says
    otherwise. An e2e module binds its model, messages and max_tokens with functools.partial."""
    return client.chat.completions.create(model=model, messages=messages, **{"temperature": 0, **kw})


class RecordingEngine:
    """An engine that keeps every request the API hands it, then lets the real engine run it: what
    reached the engine can be asserted even where the scripted backend ignores a field."""

    def __init__(self, engine):
        self.engine = engine
        self.requests = []

    def stream(self, spec, request):
        self.requests.append(request)
        return self.engine.stream(spec, request)

    def __getattr__(self, name):
        return getattr(self.engine, name)


SCHEMAS = Path(__file__).parent / "schemas"


def assert_schema(body: Any, name: str) -> None:
    """`body` is valid under the committed JSON Schema tests/schemas/<name>.json (written from
    the official API documents; `$ref`s between those files resolve by file name, so
    `{"$ref": "openai/Error.json"}` works from any of them). Never fetched at run time."""
    _validator(name).validate(body)


@functools.cache
def _validator(name: str):
    """Built once per schema and run: the chat helpers check every answer and chunk."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    resources = [
        (str(path.relative_to(SCHEMAS)), Resource.from_contents(json.loads(path.read_text()),
                                                                 default_specification=_DRAFT))
        for path in SCHEMAS.rglob("*.json")
    ]
    registry = Registry().with_resources(resources)
    registry.contents(f"{name}.json")  # a missing schema is a KeyError naming it
    # Through a $ref, so the schema's own name is the base its relative $refs resolve against.
    return Draft202012Validator({"$ref": f"{name}.json"}, registry=registry)


MESSAGES_URL = "/v1/messages"


def anthropic_in_process(api_key: str = "not-needed"):
    """An AsyncAnthropic SDK client on this process's ASGI app (the engine the `serve`
    fixture set), without retries: the real SDK against the real views, no server process."""
    import anthropic
    import httpx2
    from mlxsite.asgi import application

    transport = httpx2.ASGITransport(app=application)
    return anthropic.AsyncAnthropic(base_url="http://testserver", api_key=api_key, max_retries=0,
                                    http_client=httpx2.AsyncClient(transport=transport, base_url="http://testserver"))


def sse_events(text: str) -> list[tuple[str, dict]]:
    """Named server-sent events (Anthropic's, the Responses API's) as (event name, data); each
    name must be its data's type."""
    events = []
    for frame in text.split("\n\n"):
        if not frame.strip():
            continue
        lines = dict(line.split(": ", 1) for line in frame.split("\n"))
        data = json.loads(lines["data"])
        assert lines["event"] == data["type"], frame
        events.append((lines["event"], data))
    return events


def assert_anthropic_error(response, status: int, error_type: str) -> str:
    """The response is an Anthropic error body of that status and type; returns its message."""
    assert response.status_code == status, response.content
    body = response.json()
    assert_schema(body, "anthropic/ErrorResponse")
    assert body["error"]["type"] == error_type, body
    return body["error"]["message"]


def schemathesis_run(server, schema: dict, tmp_path: Path, mode: str, examples: int, *, key: str,
                     extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """A bounded, seeded schemathesis run (`mode` positive or negative) of `schema` against a
    live server, checking only that nothing is a server error; `extra`: more `st run` options."""
    path = tmp_path / f"openapi-{mode}.json"
    path.write_text(json.dumps(schema))
    return subprocess.run(
        [str(Path(sys.executable).parent / "st"), "run", str(path), "--url", server.url,
         "--header", f"Authorization: Bearer {key}", "--checks", "not_a_server_error", "--mode", mode,
         "--max-examples", str(examples), "--phases", "examples,coverage,fuzzing", "--workers", "1",
         "--seed", "1", "--generation-database", "none", "--request-timeout", "120", "--no-color", *extra],
        capture_output=True, text=True, timeout=900,
    )

"""Load/unload control, keep_alive and residency over HTTP, in process (scripted backend): the
states in /health and /v1/models, 401/403 without rights, and 503 insufficient_memory for a
model that cannot fit while the server keeps answering."""
from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import User

from inference.models import RequestLog
from tests.helpers import OK_MESSAGES, assert_openai_error, post
from tests.scripted import ScriptedWorld

pytestmark = pytest.mark.django_db

KEY = "sk-control-key"
SIZES = {"a": 4000, "b": 4000, "big": 10**9}


@pytest.fixture
def engine(serve, models_yaml):
    for model_id in SIZES:
        models_yaml(model_id)
    return serve(ScriptedWorld(["x"]).engine(memory_budget=8000, estimate=lambda s, path: SIZES[s.id]))


def resident(client) -> list[str]:
    return [m["id"] for m in client.get("/health").json()["resident"]]


def control(client, model_id: str, action: str, **headers):
    return client.post(f"/v1/models/{model_id}/{action}", **headers)


def test_load_and_unload_show_in_health_and_models(client, engine):
    loaded = control(client, "a", "load")
    assert loaded.status_code == 200, loaded.content
    assert loaded.json()["id"] == "a" and loaded.json()["loaded"] is True and loaded.json()["memory_bytes"] == 4000
    assert control(client, "b", "load").status_code == 200
    health = client.get("/health").json()
    assert resident(client) == ["b", "a"] and health["resident_bytes"] == 8000
    assert health["memory_budget_bytes"] == 8000
    listed = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert listed["a"]["loaded"] and listed["b"]["loaded"] and not listed["big"]["loaded"]
    assert listed["big"]["memory_bytes"] is None and listed["a"]["pinned"] is False

    unloaded = control(client, "a", "unload")
    assert unloaded.status_code == 200 and unloaded.json()["loaded"] is False
    assert resident(client) == ["b"]
    assert control(client, "a", "unload").status_code == 200  # already gone: still fine
    assert_openai_error(control(client, "nope", "load"), 404, code="model_not_found")
    assert_openai_error(client.get("/v1/models/a/load"), 405)
    assert RequestLog.objects.filter(endpoint__endswith="/load").count() >= 3


def test_keep_alive_zero_unloads_after_the_request(client, engine):
    body = {"model": "a", "messages": OK_MESSAGES, "max_tokens": 2}
    assert post(client, {**body, "keep_alive": 30}).status_code == 200
    assert client.get("/health").json()["resident"][0]["ttl_seconds"] == 30
    assert post(client, {**body, "keep_alive": 0}).status_code == 200
    deadline = time.time() + 5
    while resident(client) and time.time() < deadline:
        time.sleep(0.02)
    assert resident(client) == []
    assert engine.requests[-1].keep_alive == 0
    assert_openai_error(post(client, {**body, "keep_alive": "5m"}), 400, param="keep_alive")


def test_a_model_that_cannot_fit_is_503_and_the_server_keeps_serving(client, engine):
    assert control(client, "a", "load").status_code == 200
    error = assert_openai_error(post(client, {"model": "big", "messages": OK_MESSAGES}), 503,
                                code="insufficient_memory")
    assert "big" in error["message"] and str(10**9) in error["message"] and "8000" in error["message"]
    assert_openai_error(control(client, "big", "load"), 503, code="insufficient_memory")
    assert resident(client) == ["a"]
    assert post(client, {"model": "a", "messages": OK_MESSAGES, "max_tokens": 2}).status_code == 200


def test_control_needs_the_key_or_an_admin_login(client, engine, settings):
    settings.MLX_SERVER_API_KEY = KEY
    assert_openai_error(control(client, "a", "load"), 401, code="invalid_api_key")
    assert_openai_error(control(client, "a", "load", HTTP_AUTHORIZATION="Bearer sk-wrong"), 401)
    assert resident(client) == []
    assert control(client, "a", "load", HTTP_AUTHORIZATION=f"Bearer {KEY}").status_code == 200
    assert control(client, "a", "unload", HTTP_X_API_KEY=KEY).status_code == 200

    client.force_login(User.objects.create_user("someone", password="x"))
    assert_openai_error(control(client, "a", "load"), 403, code="permission_denied")
    assert resident(client) == []
    client.force_login(User.objects.create_user("admin", password="x", is_staff=True))
    assert control(client, "a", "load").status_code == 200 and resident(client) == ["a"]
    assert_openai_error(client.get("/v1/models"), 401)  # the login opens control, not the API


def test_keep_alive_reaches_the_engine_from_every_dialect(client, engine):
    import json

    def send(path, body):
        response = client.post(path, data=json.dumps(body), content_type="application/json")
        assert response.status_code == 200, response.content

    send("/v1/messages", {"model": "a", "max_tokens": 2, "keep_alive": 12,
                          "messages": [{"role": "user", "content": "hi"}]})
    send("/v1/responses", {"model": "a", "input": "hi", "max_output_tokens": 2, "keep_alive": 13, "store": False})
    assert [r.keep_alive for r in engine.requests] == [12, 13]
    assert client.get("/health").json()["resident"][0]["ttl_seconds"] == 13

"""Operations over HTTP, in process: the API key, /metrics, /v1/openapi.json, a full queue
(429 + Retry-After) and a model whose files are corrupt (503, and the engine lives on)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from inference.api import views
from inference.engine import Engine, Job
from inference.engine.types import ChatRequest
from inference.models import RequestLog
from tests.helpers import OK_MESSAGES, assert_openai_error, post
from tests.scripted import ScriptedWorld

pytestmark = pytest.mark.django_db

KEY = "sk-local-test-key"


def bearer(key: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def metric(client, name: str, **labels) -> float:
    """One sample's value from /metrics (0 when absent)."""
    text = client.get("/metrics", **bearer(KEY)).content.decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_with_a_key_v1_and_metrics_need_it_health_and_admin_do_not(client, settings):
    settings.MLX_SERVER_API_KEY = KEY
    missing = assert_openai_error(client.get("/v1/models"), 401, code="invalid_api_key")
    assert "API key" in missing["message"]
    assert client.get("/v1/models").headers["WWW-Authenticate"].startswith("Bearer")
    wrong = assert_openai_error(client.get("/v1/models", **bearer("sk-wrong")), 401, code="invalid_api_key")
    assert wrong["message"] == "Incorrect API key provided."
    assert_openai_error(client.get("/v1/models", HTTP_AUTHORIZATION=f"Basic {KEY}"), 401)
    assert_openai_error(post(client, {"model": "smollm2", "messages": OK_MESSAGES}), 401)
    assert_openai_error(client.get("/v1/openapi.json"), 401)
    assert client.get("/metrics").status_code == 401

    assert client.get("/v1/models", **bearer(KEY)).status_code == 200
    assert client.get("/metrics", **bearer(KEY)).status_code == 200
    assert client.get("/health").status_code == 200
    admin = client.get("/admin/")
    assert admin.status_code == 302 and "/admin/login/" in admin["Location"]
    refused = RequestLog.objects.filter(status_code=401)
    assert refused.count() == 6 and {r.error_code for r in refused} == {"invalid_api_key"}


def test_without_a_key_everything_is_open(client, settings):
    settings.MLX_SERVER_API_KEY = ""
    assert client.get("/v1/models", **bearer("anything")).status_code == 200
    assert client.get("/metrics").status_code == 200


def test_openapi_document_describes_the_v1_api(client):
    response = client.get("/v1/openapi.json")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/")
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/v1/models/{model}", "/v1/responses",
                                    "/v1/responses/{response_id}", "/v1/responses/{response_id}/input_items",
                                    "/v1/messages", "/v1/messages/count_tokens",
                                    "/v1/models/{model}/load", "/v1/models/{model}/unload"}
    messages = schema["components"]["schemas"]["MessageCreateParams"]
    assert set(messages["required"]) == {"model", "messages", "max_tokens"}
    assert messages["properties"]["temperature"]["maximum"] == 1.0
    chat = schema["paths"]["/v1/chat/completions"]["post"]
    assert {"200", "400", "401", "404", "429", "503"} <= set(chat["responses"])
    request = schema["components"]["schemas"]["ChatCompletion"]
    assert set(request["required"]) == {"model", "messages"}
    assert request["properties"]["temperature"]["maximum"] == 2.0
    assert request["properties"]["max_tokens"]["minimum"] == 1
    content = schema["components"]["schemas"]["Message"]["properties"]["content"]
    assert [v["type"] for v in content["oneOf"]] == ["string", "array"]


def test_metrics_count_requests_by_endpoint_and_status(client, settings):
    settings.MLX_SERVER_API_KEY = KEY
    labels = {"endpoint": "/v1/chat/completions", "status": "400", "outcome": "error"}
    before = metric(client, "mlx_server_requests_total", **labels)
    for _ in range(3):
        client.post("/v1/chat/completions", data="{oops", content_type="application/json", **bearer(KEY))
    assert metric(client, "mlx_server_requests_total", **labels) == before + 3
    unknown = metric(client, "mlx_server_requests_total", endpoint="unknown", status="404")
    client.get("/v1/no/such/thing", **bearer(KEY))
    assert metric(client, "mlx_server_requests_total", endpoint="unknown", status="404") == unknown + 1
    assert metric(client, "mlx_server_queue_depth") == 0


def test_a_full_queue_answers_429_with_retry_after(client, serve, models_yaml):
    models_yaml("queued", {"config.json": b"{}"})
    world = ScriptedWorld(["t"] * 100, delay=0.1)
    engine = Engine(materialize=lambda s: Path(s.source.location), loader=world.load,
                    default_max_tokens=2000, max_queue=1)
    serve(engine)
    request = ChatRequest(messages=[{"role": "user", "content": "x"}])
    spec = views.resolve_model("queued")
    running, waiting = (Job(spec, request, emit=lambda e: None) for _ in range(2))
    engine.submit(running)
    while engine.status()["state"] != "generating":
        time.sleep(0.01)
    engine.submit(waiting)
    try:
        response = post(client, {"model": "queued", "messages": OK_MESSAGES})
        error = assert_openai_error(response, 429, code="queue_full")
        assert error["type"] == "rate_limit_exceeded" and "MLX_SERVER_MAX_QUEUE" in error["message"]
        assert int(response["Retry-After"]) >= 1
        row = RequestLog.objects.get()
        assert row.status_code == 429 and row.error_code == "queue_full" and row.resolved_model == "queued"
    finally:
        running.cancelled.set()
        waiting.cancelled.set()


def test_corrupt_model_files_answer_503_naming_the_model(client, models_yaml):
    models_yaml("broken", {
        "config.json": json.dumps({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 1,
                                   "intermediate_size": 128, "num_attention_heads": 2, "rms_norm_eps": 1e-5,
                                   "vocab_size": 100}).encode(),
        "model.safetensors": b"\x00\x01 this is not a safetensors file",
    })
    error = assert_openai_error(post(client, {"model": "broken", "messages": OK_MESSAGES}), 503,
                                code="model_load_failed")
    assert error["type"] == "server_error" and "broken" in error["message"]
    row = RequestLog.objects.get()
    assert row.status_code == 503 and row.outcome == "error" and row.resolved_model == "broken"

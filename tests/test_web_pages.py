"""The browser pages on the test client: the front page, the playground's shell, the admin's
conversation view, replay and dashboard (the browser itself: test_e2e_web.py)."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from inference.conversation import conversation
from inference.dashboard import dashboard, percentile
from inference.models import RequestLog, ToolCallLog

pytestmark = pytest.mark.django_db


def log_row(**fields) -> RequestLog:
    defaults = {"request_id": "chatcmpl-x", "method": "POST", "endpoint": "/v1/chat/completions",
                "status_code": 200}
    return RequestLog.objects.create(**{**defaults, **fields})


def test_front_page_shows_state_models_and_client_urls(client, models_yaml, tmp_path):
    models_yaml("tiny", aliases=["t"], backend="vision", capabilities=["chat", "vision"], description="a tiny one")
    models_yaml("gone", source={"path": str(tmp_path / "missing")})
    page = client.get("/", HTTP_HOST="127.0.0.1:1234")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    html = page.content.decode()
    assert 'data-model="tiny"' in html and 'data-model="gone"' in html
    assert "vision" in html and "unavailable" in html
    for snippet in ('base_url="http://127.0.0.1:1234/v1"', "ANTHROPIC_BASE_URL=http://127.0.0.1:1234",
                    'wire_api = "responses"', "OPENAI_API_BASE_URL=http://127.0.0.1:1234/v1"):
        assert snippet in html
    for link in ("/playground/", "/admin/", "/v1/openapi.json", "/admin/inference/requestlog/dashboard/"):
        assert f'href="{link}"' in html
    assert "http://" not in html.replace("http://127.0.0.1:1234", "")  # nothing from elsewhere


def test_the_playground_asks_for_the_key_only_when_one_is_set(client, settings):
    assert 'id="api-key"' not in client.get("/playground/").content.decode()
    settings.MLX_SERVER_API_KEY = "sekrit"
    page = client.get("/playground/")
    assert page.status_code == 200  # the page itself is open; its /v1 calls carry the key
    html = page.content.decode()
    assert 'id="api-key"' in html and "sekrit" not in html


def test_conversation_reads_chat_tool_calls_images_and_the_answer():
    request = {"model": "m", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,<9 omitted>"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": '{"x":1}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
    ]}
    response = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "A cat."}}]}
    image = {"format": "png", "bytes": 2048, "size": [4, 4], "sha256": "ab" * 32}
    turns = conversation(json.dumps(request), json.dumps(response), [image])
    assert [t.role for t in turns] == ["system", "user", "assistant", "tool", "assistant"]
    assert [p.kind for p in turns[1].parts] == ["text", "image"] and turns[1].parts[1].image == image
    call = turns[2].parts[0]
    assert (call.kind, call.name, call.ref, json.loads(call.text)) == ("tool_call", "look", "call_1", {"x": 1})
    assert (turns[3].parts[0].kind, turns[3].parts[0].ref, turns[3].parts[0].text) == ("tool_result", "call_1", "a cat")
    assert turns[4].parts[0].text == "A cat."


def test_conversation_reads_anthropic_and_responses_bodies_and_streamed_rows():
    anthropic = {"system": "sys", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 2}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "42"}]}]}
    answer = {"type": "message", "content": [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "42"}]}
    turns = conversation(json.dumps(anthropic), json.dumps(answer), [])
    assert [t.role for t in turns] == ["system", "user", "assistant", "user", "assistant"]
    assert turns[3].parts[0].kind == "tool_result" and turns[3].parts[0].text == "42"
    assert [p.kind for p in turns[4].parts] == ["reasoning", "text"]

    responses = {"instructions": "sys", "input": [{"role": "user", "content": "weather?"}]}
    output = {"object": "response", "output": [
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "checking"}]},
        {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{}"}]}
    turns = conversation(json.dumps(responses), json.dumps(output), [])
    assert [t.role for t in turns] == ["system", "user", "assistant"]  # the answer's items in one bubble
    assert [p.kind for p in turns[2].parts] == ["text", "tool_call"]

    streamed = conversation('{"messages": [{"role": "user", "content": "x"}]}',
                            '{"role": "assistant", "content": "y"}', [])
    assert [(t.role, t.parts[0].text) for t in streamed] == [("user", "x"), ("assistant", "y")]
    assert conversation("not json", "", []) == []


def test_percentile_is_an_observed_value():
    assert percentile([], 50) is None
    assert percentile([5.0], 99) == 5.0
    assert [percentile(list(range(1, 101)), p) for p in (50, 90, 99)] == [50, 90, 99]


def test_dashboard_figures_come_from_the_rows_of_the_window():
    now = timezone.now()
    for ttft, tps, outcome in ((100, 20.0, "ok"), (300, 40.0, "ok"), (900, None, "cancelled")):
        log_row(resolved_model="m", ttft_ms=ttft, decode_tps=tps, outcome=outcome, prompt_tokens=100,
                cached_tokens=50)
    swapped = log_row(resolved_model="n", swapped_from="m", prompt_tokens=100, cached_tokens=0)
    ToolCallLog.objects.create(request=swapped, index=0, name="f", parsed_ok=True)
    ToolCallLog.objects.create(request=swapped, index=1, parsed_ok=False)
    old = log_row(resolved_model="m")
    RequestLog.objects.filter(pk=old.pk).update(created_at=now - timedelta(hours=2))

    data = dashboard("1h", now=now + timedelta(seconds=1))
    assert data["requests"] == 4  # the row two hours old is outside
    assert sum(data["requests_per_minute"]["m · ok"]) == 2 and sum(data["requests_per_minute"]["m · cancelled"]) == 1
    assert data["ttft_ms"]["models"] == ["m"] and data["ttft_ms"]["series"]["p50"] == [300]
    assert data["ttft_ms"]["series"]["p99"] == [900]
    assert data["decode_tps"]["series"]["p50"] == [20.0]  # a cancelled row's rate is left out
    assert data["cache_hit_rate_window"] == 0.375
    assert sum(data["swaps"]) == 1
    assert (sum(data["tool_calls_parsed"]), sum(data["tool_call_failures"])) == (1, 1)
    assert len(data["labels"]) == len(data["swaps"]) >= 60


def test_admin_detail_shows_bubbles_pretty_json_units_and_replay(admin_client):
    body = {"model": "smollm2", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "describe"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,<9 omitted>"}}]}],
            "temperature": 0.2}
    row = log_row(request_body=json.dumps(body), response_body=json.dumps({"role": "assistant", "content": "a dot"}),
                  latency_ms=973.6069289999705, ttft_ms=12.3456, decode_tps=41.23456, prompt_tokens=10,
                  completion_tokens=5, cached_tokens=4, image_count=1,
                  images=[{"format": "png", "bytes": 70, "size": [1, 1], "sha256": "cd" * 32}])
    page = admin_client.get(f"/admin/inference/requestlog/{row.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'class="turn user"' in html and 'class="turn assistant"' in html and "a dot" in html
    assert "974 ms" in html and "41.2 tok/s" in html and "10, 4 cached → 5" in html
    assert "973.60" not in html
    assert '&quot;temperature&quot;: 0.2' in html  # indented JSON, one key a line
    assert f'href="/playground/?replay={row.pk}"' in html

    replay = admin_client.get(f"/admin/inference/requestlog/{row.pk}/replay/").json()
    assert replay["messages"][0]["content"] == [{"type": "text", "text": "describe"}]
    assert replay["replay_images_left_out"] == 1 and replay["temperature"] == 0.2


def test_replay_and_dashboard_are_staff_only(client, admin_client):
    row = log_row(request_body='{"messages": []}')
    assert client.get(f"/admin/inference/requestlog/{row.pk}/replay/").status_code == 302  # to the login
    assert client.get("/admin/inference/requestlog/dashboard/").status_code == 302
    messages = log_row(endpoint="/v1/messages", request_body='{"messages": []}')
    assert admin_client.get(f"/admin/inference/requestlog/{messages.pk}/replay/").status_code == 404
    page = admin_client.get("/admin/inference/requestlog/dashboard/?window=24h")
    assert page.status_code == 200 and 'id="dashboard-data"' in page.content.decode()
    assert admin_client.get("/admin/inference/requestlog/dashboard/?window=bogus").context["window"] == "1h"
    assert admin_client.get("/admin/inference/requestlog/").status_code == 200

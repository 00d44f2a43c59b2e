"""Log retention: prune_logs, MLX_SERVER_LOG_RETENTION_DAYS applied as rows are written (at most
hourly), and MLX_SERVER_LOG_BODIES=0 keeping metadata only."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from inference import retention
from inference.models import RequestLog, ToolCallLog
from tests.helpers import post

pytestmark = pytest.mark.django_db

ASK = [{"role": "user", "content": "Weather in Paris?"}]
QWEN_CALL = ["\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


@pytest.fixture
def scripted(models_yaml, serve):
    models_yaml("qwen-like", tool_format="qwen_tool_call")
    serve(QWEN_CALL)


def aged(days: float, n: int = 1) -> list[RequestLog]:
    """Rows as if written `days` ago, each with a tool-call row."""
    rows = [RequestLog.objects.create(request_id=f"r{days}-{i}", method="POST", endpoint="/v1/chat/completions",
                                      status_code=200) for i in range(n)]
    RequestLog.objects.filter(id__in=[r.id for r in rows]).update(created_at=timezone.now() - timedelta(days=days))
    for row in rows:
        ToolCallLog.objects.create(request=row, index=0, name="f", arguments="{}")
    return rows


@pytest.mark.parametrize("text, age", [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)),
                                       ("90m", timedelta(minutes=90)), ("45s", timedelta(seconds=45)),
                                       ("7", timedelta(days=7)), ("1.5d", timedelta(hours=36))])
def test_parse_age(text, age):
    assert retention.parse_age(text) == age


@pytest.mark.parametrize("text", ["", "30 days", "-1d", "d", "3w"])
def test_parse_age_refuses(text):
    with pytest.raises(ValueError):
        retention.parse_age(text)


@pytest.mark.django_db(transaction=True)  # VACUUM runs outside a transaction
def test_prune_logs_deletes_only_the_old_rows_and_their_tool_calls(capsys, monkeypatch):
    monkeypatch.setattr(retention, "BATCH", 3)  # several batches
    aged(40, 7)
    kept = aged(10, 2)
    call_command("prune_logs", "--older-than", "30d", "--vacuum")
    assert "deleted 7 request-log row(s)" in capsys.readouterr().out
    assert set(RequestLog.objects.values_list("id", flat=True)) == {r.id for r in kept}
    assert ToolCallLog.objects.count() == 2
    with pytest.raises(CommandError, match="not an age"):
        call_command("prune_logs", "--older-than", "soon")


def test_the_retention_setting_prunes_as_rows_are_written_at_most_hourly(client, scripted, settings, monkeypatch):
    monkeypatch.setattr(retention, "_last", [float("-inf")])
    settings.MLX_SERVER_LOG_RETENTION_DAYS = 30
    aged(31, 2)
    assert post(client, {"model": "qwen-like", "messages": ASK, "tools": TOOLS}).status_code == 200
    assert RequestLog.objects.count() == 1  # the new row; the old ones pruned as it was written
    aged(31, 1)
    post(client, {"model": "qwen-like", "messages": ASK, "tools": TOOLS})
    assert RequestLog.objects.count() == 3  # within the hour: not pruned again
    settings.MLX_SERVER_LOG_RETENTION_DAYS = 0
    monkeypatch.setattr(retention, "_last", [float("-inf")])
    post(client, {"model": "qwen-like", "messages": ASK, "tools": TOOLS})
    assert RequestLog.objects.count() == 4  # off: kept


def test_log_bodies_off_keeps_metadata_only(client, scripted, settings):
    settings.MLX_SERVER_LOG_BODIES = False
    response = post(client, {"model": "qwen-like", "messages": ASK, "tools": TOOLS})
    assert response.json()["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'
    row = RequestLog.objects.get()
    assert (row.request_body, row.response_body) == ("", "")
    assert (row.status_code, row.finish_reason, row.model, row.prompt_tokens > 0) == (200, "tool_calls", "qwen-like", True)
    (call,) = ToolCallLog.objects.filter(request=row)
    assert (call.name, call.arguments) == ("get_weather", "")
    settings.MLX_SERVER_LOG_BODIES = True
    post(client, {"model": "qwen-like", "messages": ASK, "tools": TOOLS})
    row = RequestLog.objects.order_by("-id").first()
    assert "Weather in Paris?" in row.request_body and "get_weather" in row.response_body

"""Writing request-log rows: the API layer's job, once per request, at its end."""
from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest

from ..models import RequestLog, ToolCallLog
from .errors import APIError


def new_request_id(prefix: str = "req") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def clip(text: str) -> str:
    limit = settings.MLX_SERVER_LOG_BODY_CHARS
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


# Base64 payloads of data URIs: the log keeps each image's hash and size, not its bytes.
_DATA_URI_PAYLOAD = re.compile(r"(data:[^;,\"\s]*(?:;[^;,\"\s]*)*;base64,)([A-Za-z0-9+/=_\-]|\\[nr/])+")


def _redact(match: re.Match) -> str:
    return f"{match[1]}<{len(match[0]) - len(match[1])} base64 chars omitted>"


def body_text(request: HttpRequest) -> str:
    """The request body as text for the log, whatever state the stream is in, with image
    payloads left out."""
    try:
        raw = request.body
    except Exception:  # already streamed by a parser, or too large to read
        return ""
    return clip(_DATA_URI_PAYLOAD.sub(_redact, raw.decode("utf-8", errors="replace")))


def client_of(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "") or ""


@dataclass
class CallLog:
    """Fields of one request's row, filled in as the request goes; written once."""

    request: HttpRequest
    request_id: str = field(default_factory=lambda: new_request_id("chatcmpl"))
    started: float = field(default_factory=time.perf_counter)
    fields: dict[str, Any] = field(default_factory=dict)
    written: bool = False

    def __post_init__(self) -> None:
        self.request._mlx_logged = True  # the middleware leaves this request to us

    def set(self, **values: Any) -> None:
        self.fields.update(values)

    def mark_first_token(self) -> None:
        self.fields.setdefault("ttft_ms", (time.perf_counter() - self.started) * 1000)

    def fail(self, error: APIError) -> None:
        self.set(status_code=error.status_code, outcome=RequestLog.Outcome.ERROR,
                 error_code=error.code, error=error.message)

    def row(self) -> dict[str, Any]:
        response = self.fields.pop("response", None)
        if response is not None and not isinstance(response, str):
            response = json.dumps(response, ensure_ascii=False)
        return {
            "request_id": self.request_id,
            "method": self.request.method,
            "endpoint": self.request.path,
            "request_body": body_text(self.request),
            "response_body": clip(response or ""),
            "client": client_of(self.request),
            "latency_ms": (time.perf_counter() - self.started) * 1000,
            **self.fields,
        }

    def _save(self) -> None:
        calls = self.fields.pop("tool_calls", None) or []
        failures = self.fields.pop("tool_failures", None) or []
        with transaction.atomic():
            row = RequestLog.objects.create(**self.row())
            ToolCallLog.objects.bulk_create(
                [ToolCallLog(request=row, index=i, call_id=c.id, name=c.name, arguments=c.arguments)
                 for i, c in enumerate(calls)]
                + [ToolCallLog(request=row, index=len(calls) + i, arguments=raw, parsed_ok=False,
                               error="could not parse this tool call; returned as content")
                   for i, raw in enumerate(failures)]
            )

    async def write(self) -> None:
        if self.written:
            return
        self.written = True
        await sync_to_async(self._save)()

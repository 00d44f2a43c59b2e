"""Request-log rows: one per /v1 request, drafted as the request goes, written once at its end.

The request-log middleware (inference/middleware.py) puts a CallLog on every request as
`request.log_draft`; views fill it in (the chat view: model, tokens, timings, the answer) and
the middleware writes it once the response is made. A streamed answer ends after the view
has returned, so its row is written by the stream itself (Generation.stream).
"""
from __future__ import annotations

import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse

from ..models import RequestLog, ToolCallLog
from ..retention import maybe_prune
from .errors import APIError, ErrorResponse, ServerError

logger = logging.getLogger(__name__)


def new_request_id(prefix: str = "req-") -> str:
    """`prefix` with its separator, as the dialect's ids look (`chatcmpl-`, `resp_`)."""
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def clip(text: str) -> str:
    limit = settings.MLX_SERVER_LOG_BODY_CHARS
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


# Base64 payloads of data URIs: the log keeps each image's hash and size, not its bytes.
_DATA_URI_PAYLOAD = re.compile(r"(data:[^;,\"\s]*(?:;[^;,\"\s]*)*;base64,)([A-Za-z0-9+/=_\-]|\\[nr/])+")
# ...and of Anthropic's base64 image sources ({"type": "base64", "media_type": ..., "data": "..."}).
_BASE64_SOURCE_PAYLOAD = re.compile(r"(\"data\"\s*:\s*\")(?:[A-Za-z0-9+/=]|\\[nr/]){64,}")


def _redact(match: re.Match) -> str:
    return f"{match[1]}<{len(match[0]) - len(match[1])} base64 chars omitted>"


def body_text(request: HttpRequest) -> str:
    """The request body as text for the log, whatever state the stream is in, with image
    payloads left out."""
    try:
        raw = request.body
    except Exception:  # already streamed by a parser, or too large to read
        return ""
    text = _DATA_URI_PAYLOAD.sub(_redact, raw.decode("utf-8", errors="replace"))
    return clip(_BASE64_SOURCE_PAYLOAD.sub(_redact, text))


def client_of(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "") or ""


@dataclass
class CallLog:
    """Fields of one request's row, filled in as the request goes; written once."""

    request: HttpRequest
    request_id: str = field(default_factory=new_request_id)
    started: float = field(default_factory=time.perf_counter)
    fields: dict[str, Any] = field(default_factory=dict)
    written: bool = False

    def set(self, **values: Any) -> None:
        self.fields.update(values)

    def mark_first_token(self) -> None:
        self.fields.setdefault("ttft_ms", (time.perf_counter() - self.started) * 1000)

    def fail(self, error: APIError, detail: str = "") -> None:
        """The request failed with `error`; `detail` (the row only, never the client) says
        more, such as the exception behind a 500."""
        self.set(status_code=error.status_code, outcome=RequestLog.Outcome.ERROR,
                 error_code=error.code, error=detail or error.message)

    def fail_unexpected(self, exc: Exception) -> ServerError:
        """A bug, not a client's mistake: a 500 whose row names the exception (the server
        log gets its traceback); the error to send is OpenAI's generic one."""
        logger.error("request %s failed", self.request_id, exc_info=exc)
        error = ServerError()
        self.fail(error, detail=f"{type(exc).__name__}: {exc}")
        return error

    def respond(self, response: HttpResponse) -> None:
        """What the row takes from a finished (not streamed) response, where the view set
        nothing else: its status, its error, its body."""
        if isinstance(response, ErrorResponse) and "error_code" not in self.fields:
            self.fail(response.error)
        self.fields.setdefault("status_code", response.status_code)
        self.fields.setdefault(
            "outcome", RequestLog.Outcome.OK if response.status_code < 400 else RequestLog.Outcome.ERROR
        )
        if response.status_code >= 400 and "error" not in self.fields:  # not one of ours (Django's own)
            self.fields["error"] = response.content.decode("utf-8", errors="replace")[:2000]
        self.fields.setdefault("response", response.content.decode("utf-8", errors="replace"))

    def row(self) -> dict[str, Any]:
        response = self.fields.pop("response", None)
        if response is not None and not isinstance(response, str):
            response = json.dumps(response, ensure_ascii=False)
        bodies = settings.MLX_SERVER_LOG_BODIES
        return {
            "request_id": self.request_id,
            "method": self.request.method,
            "endpoint": self.request.path,
            "request_body": body_text(self.request) if bodies else "",
            "response_body": clip(response or "") if bodies else "",
            "client": client_of(self.request),
            "latency_ms": (time.perf_counter() - self.started) * 1000,
            **self.fields,
        }

    def _save(self) -> None:
        calls = self.fields.pop("tool_calls", None) or []
        failures = self.fields.pop("tool_failures", None) or []
        with transaction.atomic():
            row = RequestLog.objects.create(**self.row())
            keep = settings.MLX_SERVER_LOG_BODIES
            ToolCallLog.objects.bulk_create(
                [ToolCallLog(request=row, index=i, call_id=c.id, name=c.name, arguments=c.arguments if keep else "")
                 for i, c in enumerate(calls)]
                + [ToolCallLog(request=row, index=len(calls) + i, arguments=raw if keep else "", parsed_ok=False,
                               error="could not parse this tool call; returned as content")
                   for i, raw in enumerate(failures)]
            )

    def save(self) -> None:
        if not self.written:
            self.written = True
            self._save()
            maybe_prune()

    async def write(self) -> None:
        await sync_to_async(self.save)()

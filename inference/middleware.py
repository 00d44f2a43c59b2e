"""Logs every /v1 request that no view logged itself (404s, 405s, models list, bad URLs)."""
from __future__ import annotations

import json
import time

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.utils.decorators import sync_and_async_middleware

from .api.logs import body_text, clip, client_of, new_request_id
from .models import RequestLog


def _wants_log(request) -> bool:
    return request.path.startswith("/v1") and not getattr(request, "_mlx_logged", False)


def _write(request, response, started: float) -> None:
    content = b"" if response.streaming else response.content
    error_code = error = ""
    if response.status_code >= 400:
        try:
            body = json.loads(content)["error"]
            error_code, error = body.get("code") or "", body.get("message") or ""
        except (ValueError, KeyError, TypeError):
            error = content.decode("utf-8", errors="replace")[:2000]
    RequestLog.objects.create(
        request_id=response.headers.get("x-request-id") or new_request_id(),
        method=request.method,
        endpoint=request.path,
        status_code=response.status_code,
        outcome=RequestLog.Outcome.OK if response.status_code < 400 else RequestLog.Outcome.ERROR,
        latency_ms=(time.perf_counter() - started) * 1000,
        request_body=body_text(request),
        response_body=clip(content.decode("utf-8", errors="replace")),
        error_code=error_code,
        error=error,
        client=client_of(request),
    )


@sync_and_async_middleware
def request_log_middleware(get_response):
    if iscoroutinefunction(get_response):

        async def middleware(request):
            started = time.perf_counter()
            response = await get_response(request)
            if _wants_log(request):
                await sync_to_async(_write)(request, response, started)
            return response

    else:

        def middleware(request):
            started = time.perf_counter()
            response = get_response(request)
            if _wants_log(request):
                _write(request, response, started)
            return response

    return middleware

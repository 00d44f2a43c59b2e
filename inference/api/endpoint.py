"""What every generating endpoint's view shares, whatever its dialect: one log row per
request whatever happens, the JSON body read and validated off the event loop, and the
response (SSE or JSON) of a started Generation.

A dialect's view is `@endpoint("chatcmpl-")` over an async function that raises APIError for
anything the client did wrong; `render_error` writes errors in the dialect's shape (OpenAI's by
default; Anthropic's for /v1/messages).
"""
from __future__ import annotations

import functools
import json
from typing import Any, AsyncIterator, Awaitable, Callable

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import serializers

from ..shutdown import draining
from .errors import (
    APIError, InvalidRequest, MethodNotAllowed, RequestTooLarge, ShuttingDown, error_response, from_validation_error,
)
from .logs import CallLog, new_request_id

Handler = Callable[[HttpRequest, CallLog], Awaitable[HttpResponse]]


def endpoint(id_prefix: str, *, render_error: Callable[[APIError], HttpResponse] = error_response,
             methods: tuple[str, ...] = ("POST",)) -> Callable[[Handler], Callable]:
    """Every outcome is the request's row: an APIError is its status, anything else a 500
    (the exception in the row, the dialect's generic body to the client), and the server goes on.
    The row's request id (prefixed as the dialect's ids look) is the response's id too."""

    def wrap(handler: Handler) -> Callable:
        @csrf_exempt
        @functools.wraps(handler)
        async def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            log: CallLog = request.log_draft
            log.request_id = new_request_id(id_prefix)
            try:
                if request.method not in methods:
                    raise MethodNotAllowed(f"Method {request.method} not allowed; use {' or '.join(methods)}.")
                if draining():
                    raise ShuttingDown()
                return await handler(request, log, *args, **kwargs)
            except APIError as error:
                log.fail(error)
                response = render_error(error)
            except Exception as exc:
                response = render_error(log.fail_unexpected(exc))
            log.set(status_code=response.status_code)  # a dialect may say it otherwise (Anthropic's 529)
            return response

        return view

    return wrap


def parse_json_body(request: HttpRequest) -> dict[str, Any]:
    try:
        raw = request.body
    except RequestDataTooBig:
        raise RequestTooLarge(
            f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
        ) from None
    try:
        # UTF-8 only (RFC 8259): json.loads would also guess UTF-16/32 from the bytes.
        payload = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
        raise InvalidRequest(
            "We could not parse the JSON body of your request. The body must be a JSON object.",
            code="invalid_json",
        ) from None
    if not isinstance(payload, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return payload


async def validated_body(request: HttpRequest, log: CallLog,
                         serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
    """The request's validated data. Parsing and validating a large body takes CPU time: off
    the event loop, so streams in flight and /health keep going meanwhile. The row learns the
    model and whether it streams before validation, so a refused request says what it asked."""
    payload = await sync_to_async(parse_json_body, thread_sensitive=False)(request)
    log.set(model=str(payload.get("model", ""))[:512], stream=payload.get("stream") is True)
    serializer = serializer_class(data=payload)
    if not await sync_to_async(serializer.is_valid, thread_sensitive=False)():
        raise from_validation_error(serializer.errors)
    return serializer.validated_data


def sse_response(frames: AsyncIterator[bytes], log: CallLog) -> StreamingHttpResponse:
    response = StreamingHttpResponse(frames, content_type="text/event-stream",
                                     headers={"x-request-id": log.request_id})
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def json_response(body: dict[str, Any], log: CallLog) -> JsonResponse:
    return JsonResponse(body, headers={"x-request-id": log.request_id}, json_dumps_params={"ensure_ascii": False})

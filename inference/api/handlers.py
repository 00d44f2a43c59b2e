"""Which dialect writes an error that no view wrote: the API key's 401 and Django's 404 and
500 handlers answer in Anthropic's shape under /v1/messages, in OpenAI's elsewhere."""
from __future__ import annotations

from typing import Callable

from django.http import HttpRequest

from .anthropic.errors import PATH_PREFIX as ANTHROPIC_PREFIX
from .anthropic.errors import render_error as anthropic_error
from .errors import APIError, ErrorResponse, ServerError, UnknownURL, error_response


def render_for(path: str) -> Callable[[APIError], ErrorResponse]:
    return anthropic_error if path.startswith(ANTHROPIC_PREFIX) else error_response


def not_found(request: HttpRequest, exception: Exception | None = None) -> ErrorResponse:
    return render_for(request.path)(UnknownURL(f"Unknown request URL: {request.method} {request.path}."))


def server_error(request: HttpRequest) -> ErrorResponse:
    return render_for(request.path)(ServerError())

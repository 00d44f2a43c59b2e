"""Anthropic's error shape: {"type": "error", "error": {"type", "message"}}, with its statuses.

Errors are the shared APIError classes; this module only writes them as Anthropic does. Its
statuses differ from ours in one place: a full queue is Anthropic's 529 `overloaded_error`
(the SDKs retry it), and a model that fails to load is a 500 `api_error`.
"""
from __future__ import annotations

from typing import Any

from ..errors import APIError, ErrorResponse, QueueFull, ServiceUnavailable

PATH_PREFIX = "/v1/messages"
OVERLOADED = 529

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    OVERLOADED: "overloaded_error",
}


def status_of(error: APIError) -> int:
    if isinstance(error, QueueFull):
        return OVERLOADED
    if isinstance(error, ServiceUnavailable):
        return 500
    return error.status_code


def body_of(error: APIError) -> dict[str, Any]:
    """The error object (also a stream's `error` event)."""
    status = status_of(error)
    kind = _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": error.message}}


def render_error(error: APIError) -> ErrorResponse:
    """The JSON response of `error` in Anthropic's shape (keeping the error for the log)."""
    return ErrorResponse(error, body=body_of(error), status=status_of(error))

"""One error body for every failure: {"error": {"message", "type", "param", "code"}}.

Every error is an APIError class and every error response comes from `error_response` (or
another dialect's writer, api/handlers.py says which): DRF views reach it through
EXCEPTION_HANDLER; the async views, the API-key middleware and Django's 404/500 handlers call
it directly, so clients see the same shape everywhere. The response keeps the error it renders (ErrorResponse.error), which is how the request log
learns the code and message without parsing the body back.
"""
from __future__ import annotations

from typing import Any

from django.http import JsonResponse
from rest_framework import exceptions, status


class APIError(exceptions.APIException):
    """An OpenAI-style error: HTTP status, error type, code and the offending param."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "Invalid request."
    default_code = "invalid_request_error"
    error_type = "invalid_request_error"

    def __init__(self, message: str | None = None, *, code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message or self.default_detail, code or self.default_code)
        self.message = str(message or self.default_detail)
        self.code = code or self.default_code
        self.param = param
        self.headers = headers or {}


class InvalidRequest(APIError):
    pass


class ModelNotFound(APIError):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "model_not_found"


class NotFound(APIError):
    """A stored object (a response) that does not exist, or no longer does."""

    status_code = status.HTTP_404_NOT_FOUND
    default_code = "not_found"


class MethodNotAllowed(APIError):
    status_code = status.HTTP_405_METHOD_NOT_ALLOWED
    default_code = "method_not_allowed"


class RequestTooLarge(APIError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"


class QueueFull(APIError):
    """Too many requests already wait for the model; `Retry-After` says when to come back."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "queue_full"
    error_type = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class ServiceUnavailable(APIError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "model_load_failed"
    error_type = "server_error"


class ShuttingDown(ServiceUnavailable):
    """SIGTERM came: no new generation starts; `Retry-After` for the server that replaces this one."""

    default_code = "shutting_down"

    def __init__(self) -> None:
        super().__init__("The server is shutting down and takes no new requests.",
                         headers={"Retry-After": "5"})


class ServerError(APIError):
    status_code = status.HTTP_500_INTERNAL_SERVER_ERROR
    default_detail = "The server had an error while processing your request."
    default_code = "internal_error"
    error_type = "server_error"


class Unauthorized(APIError):
    """No API key or a wrong one (inference/auth.py)."""

    status_code = status.HTTP_401_UNAUTHORIZED
    default_code = "invalid_api_key"

    def __init__(self, message: str):
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="mlx-server"'})


class Forbidden(APIError):
    """Signed in, but not as staff (the control endpoints)."""

    status_code = status.HTTP_403_FORBIDDEN
    default_code = "permission_denied"
    error_type = "permission_error"


class UnknownURL(APIError):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "unknown_url"


# DRF's own exceptions (an unsupported media type, a method a view lacks, ...): type and code.
_STATUS_ERRORS = {
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "request_too_large"),
    415: ("invalid_request_error", "unsupported_media_type"),
    429: ("rate_limit_exceeded", "rate_limit_exceeded"),
}


class FrameworkError(APIError):
    """One of DRF's exceptions in the OpenAI shape: its status, and a type and code by status."""

    def __init__(self, exc: exceptions.APIException):
        self.status_code = exc.status_code
        self.error_type, code = _STATUS_ERRORS.get(exc.status_code, ("invalid_request_error", exc.default_code))
        super().__init__(str(exc.detail), code=code)


def body_of(error: APIError) -> dict[str, Any]:
    """The OpenAI error object (also the last SSE frame of a stream that fails)."""
    return {"error": {"message": error.message, "type": error.error_type, "param": error.param, "code": error.code}}


class ErrorResponse(JsonResponse):
    """The JSON response of `error`, which it keeps for the request log; `body` and `status`
    are another dialect's writing of it (OpenAI's by default)."""

    def __init__(self, error: APIError, *, body: dict[str, Any] | None = None, status: int | None = None):
        super().__init__(body or body_of(error), status=status or error.status_code, headers=error.headers)
        self.error = error


def error_response(error: APIError) -> ErrorResponse:
    return ErrorResponse(error)


def first_validation_error(detail: Any, path: str = "") -> tuple[str, str]:
    """DRF's nested error detail -> (param path like messages[0].content, message)."""
    if isinstance(detail, dict):
        key, value = next(iter(detail.items()))
        if key == "non_field_errors":
            return first_validation_error(value, path)
        if isinstance(key, int):  # DRF keys list-item errors by index
            return first_validation_error(value, f"{path}[{key}]")
        return first_validation_error(value, f"{path}.{key}" if path else str(key))
    if isinstance(detail, list):
        for i, item in enumerate(detail):
            if item in ({}, [], None, ""):
                continue
            if isinstance(item, (dict, list)) and not isinstance(item, str):
                return first_validation_error(item, f"{path}[{i}]")
            return path, str(item)
    return path, str(detail)


def from_validation_error(detail: Any) -> InvalidRequest:
    param, message = first_validation_error(detail)
    return InvalidRequest(f"{param}: {message}" if param else message, param=param or None)


def exception_handler(exc: Exception, context: dict) -> ErrorResponse | None:
    """DRF EXCEPTION_HANDLER: every DRF error becomes the OpenAI body."""
    if isinstance(exc, APIError):
        return error_response(exc)
    if isinstance(exc, exceptions.ValidationError):
        return error_response(from_validation_error(exc.detail))
    if isinstance(exc, exceptions.ParseError):
        return error_response(InvalidRequest(
            "We could not parse the JSON body of your request. The body must be a JSON object.",
            code="invalid_json",
        ))
    if isinstance(exc, exceptions.APIException):
        return error_response(FrameworkError(exc))
    return None


"""One error body for every failure: {"error": {"message", "type", "param", "code"}}.

DRF views reach it through EXCEPTION_HANDLER; the async chat view and Django's 404/500
handlers call `error_response` directly, so clients see the same shape everywhere.
"""
from __future__ import annotations

from typing import Any

from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response


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


class ServerError(APIError):
    status_code = status.HTTP_500_INTERNAL_SERVER_ERROR
    default_code = "internal_error"
    error_type = "server_error"


def error_body(message: str, *, type: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def body_of(error: APIError) -> dict[str, Any]:
    return error_body(error.message, type=error.error_type, code=error.code, param=error.param)


def error_response(error: APIError) -> JsonResponse:
    return JsonResponse(body_of(error), status=error.status_code, headers=error.headers)


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


_STATUS_ERRORS = {
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "request_too_large"),
    415: ("invalid_request_error", "unsupported_media_type"),
    429: ("rate_limit_exceeded", "rate_limit_exceeded"),
}


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF EXCEPTION_HANDLER: every DRF error becomes the OpenAI body."""
    if isinstance(exc, APIError):
        return Response(body_of(exc), status=exc.status_code, headers=exc.headers)
    if isinstance(exc, exceptions.ValidationError):
        return Response(body_of(from_validation_error(exc.detail)), status=400)
    if isinstance(exc, exceptions.ParseError):
        error = InvalidRequest(
            "We could not parse the JSON body of your request. The body must be a JSON object.",
            code="invalid_json",
        )
        return Response(body_of(error), status=400)
    if isinstance(exc, exceptions.APIException):
        kind, code = _STATUS_ERRORS.get(exc.status_code, ("invalid_request_error", exc.default_code))
        return Response(error_body(str(exc.detail), type=kind, code=code), status=exc.status_code)
    return None


def not_found(request, exception=None) -> JsonResponse:
    return JsonResponse(
        error_body(f"Unknown request URL: {request.method} {request.path}.", type="invalid_request_error",
                   code="unknown_url"),
        status=404,
    )


def server_error(request) -> JsonResponse:
    return JsonResponse(
        error_body("The server had an error while processing your request.", type="server_error",
                   code="internal_error"),
        status=500,
    )

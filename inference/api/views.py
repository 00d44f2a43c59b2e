"""HTTP endpoints. The chat view is async so a long generation never holds a thread that
other requests (health, models, admin) need; the small endpoints are plain DRF views."""
from __future__ import annotations

import json
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.response import Response
from rest_framework.views import APIView

from registry.active import get_registry, locate_spec
from registry.model_folder import context_length
from registry.specs import ModelSpec

from ..blas import load_fast_blas
from ..engine import get_engine
from ..tools import ToolFormat, get_tool_format
from .chat import ChatCall, build_chat_request
from .errors import (
    APIError, InvalidRequest, MethodNotAllowed, ModelNotFound, RequestTooLarge, error_response,
    from_validation_error,
)
from .images import load_request_images
from .logs import CallLog, new_request_id
from .responses import ModelEntry, ModelSerializer, model_list
from .serializers import ChatCompletionSerializer


def model_entry(spec: ModelSpec, loaded_id: str | None) -> ModelEntry:
    where = locate_spec(spec)
    return ModelEntry(
        id=spec.id,
        created=int(where.path.stat().st_mtime) if where.path else 0,
        aliases=spec.aliases,
        backend=spec.backend,
        tool_format=spec.tool_format,
        capabilities=spec.capabilities,
        context_length=context_length(spec, where.path),
        available=where.available,
        unavailable_reason=where.reason or None,
        loaded=spec.id == loaded_id,
        ttl=get_engine().ttl_of(spec) or None,
        fixture=spec.fixture,
        description=spec.description,
    )


def resolve_model(name: str) -> ModelSpec:
    spec = get_registry().resolve(name)
    if spec is None:
        raise ModelNotFound(f"The model `{name}` does not exist. GET /v1/models lists the models.",
                            param="model")
    return spec


def not_available(spec: ModelSpec, reason: str) -> ModelNotFound:
    return ModelNotFound(f"The model `{spec.id}` is registered but not available: {reason}",
                         code="model_not_available", param="model")


def tool_format_of(spec: ModelSpec) -> ToolFormat:
    """The model's tool format, looked up once per request; one that is not registered (a
    models.yaml edited since start-up, which the system check did not see) makes the model
    unavailable rather than failing mid-request."""
    try:
        return get_tool_format(spec.tool_format)
    except KeyError as exc:
        raise not_available(spec, exc.args[0]) from None


def servable_model(name: str, log: CallLog) -> tuple[ModelSpec, ToolFormat]:
    """The model a chat request names, checked once here: registered, its files at hand (the
    worker materializes them), its tool format known. Filesystem work: run it off the loop."""
    spec = resolve_model(name)
    log.set(resolved_model=spec.id)
    where = locate_spec(spec)
    if not where.available:
        raise not_available(spec, where.reason)
    return spec, tool_format_of(spec)


class ModelListView(APIView):
    def get(self, request):
        registry = get_registry()
        loaded = get_engine().loaded_id
        return Response(model_list([model_entry(s, loaded) for s in registry.specs]))


class ModelDetailView(APIView):
    def get(self, request, model: str):
        return Response(ModelSerializer(model_entry(resolve_model(model), get_engine().loaded_id)).data)


class HealthView(APIView):
    def get(self, request):
        engine = get_engine()
        return Response({
            "status": "ok",
            "uptime_seconds": round(time.time() - engine.started_at, 3),
            "default_model": get_registry().default_id,
            **engine.status(),
            "blas": load_fast_blas().as_dict(),
        })


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


@csrf_exempt
async def chat_completions(request: HttpRequest) -> HttpResponse:
    """Every outcome is the request's row: an APIError is its status, anything else a 500
    (the exception in the row, OpenAI's generic body to the client), and the server goes on."""
    log: CallLog = request.log_draft
    log.request_id = new_request_id("chatcmpl")  # the completion's id too, as OpenAI's look
    try:
        return await _chat(request, log)
    except APIError as error:
        log.fail(error)
        return error_response(error)
    except Exception as exc:
        return error_response(log.fail_unexpected(exc))


async def _chat(request: HttpRequest, log: CallLog) -> HttpResponse:
    if request.method != "POST":
        raise MethodNotAllowed(f"Method {request.method} not allowed; use POST.")
    # Parsing and validating a large body takes CPU time: off the event loop, so streams
    # in flight and /health keep going meanwhile.
    payload = await sync_to_async(parse_json_body, thread_sensitive=False)(request)
    log.set(model=str(payload.get("model", ""))[:512], stream=payload.get("stream") is True)
    serializer = ChatCompletionSerializer(data=payload)
    if not await sync_to_async(serializer.is_valid, thread_sensitive=False)():
        raise from_validation_error(serializer.errors)
    data = serializer.validated_data
    # Reading models.yaml and looking for the model's files touch the disk: off the loop too.
    spec, tool_format = await sync_to_async(servable_model, thread_sensitive=False)(data["model"], log)
    await load_request_images(spec, data["messages"], log)
    chat_request = build_chat_request(data, tool_format=tool_format)
    call = ChatCall(
        log=log, spec=spec,
        events=get_engine().stream(spec, chat_request),
        include_usage=bool((data.get("stream_options") or {}).get("include_usage")),
        tools=chat_request.tools, tool_format=tool_format,
    )
    await call.start()
    headers = {"x-request-id": log.request_id}
    if data.get("stream"):
        response = StreamingHttpResponse(call.stream(), content_type="text/event-stream", headers=headers)
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response
    body = await call.complete()
    return JsonResponse(body, headers=headers, json_dumps_params={"ensure_ascii": False})

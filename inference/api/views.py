"""HTTP endpoints. The chat view is async so a long generation never holds a thread that
other requests (health, models, admin) need; the small endpoints are plain DRF views."""
from __future__ import annotations

import time

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse
from rest_framework.response import Response
from rest_framework.views import APIView

from registry.active import get_registry, locate_spec
from registry.model_folder import context_length
from registry.specs import ModelSpec

from ..blas import load_fast_blas
from ..reasoning import get_reasoning_format
from ..runtime import get_engine
from ..tools import ToolFormat, get_tool_format
from .chat import ChatCall, build_chat_request, choice_requests
from .completions import CompletionCall, completion_requests
from .embeddings import embed_request, embeddings_body
from .endpoint import endpoint, json_response, sse_response, validated_body
from .errors import InvalidRequest, ModelNotFound
from .images import load_request_images
from .logs import CallLog
from .responses import ModelEntry, ModelSerializer, model_list
from .serializers import ChatCompletionSerializer, CreateCompletionSerializer, CreateEmbeddingSerializer


def model_entry(spec: ModelSpec) -> ModelEntry:
    where = locate_spec(spec)
    engine = get_engine()
    resident = {m["id"]: m for m in engine.resident()}.get(spec.id)
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
        loaded=engine.is_resident(spec.id),
        memory_bytes=resident["budget_bytes"] if resident else None,
        pinned=spec.pin,
        ttl=(resident["ttl_seconds"] if resident else engine.ttl_of(spec)) or None,
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


def servable_model(name: str, log: CallLog, capability: str = "chat") -> tuple[ModelSpec, ToolFormat]:
    """The model a request names, checked once here: registered, able to do what the endpoint
    asks (`capability`: chat, embeddings), its files at hand (the worker materializes them),
    its tool format known. Filesystem work: run it off the loop."""
    spec = resolve_model(name)
    log.set(resolved_model=spec.id)
    if capability not in spec.capabilities:
        endpoint = "/v1/embeddings" if "embeddings" in spec.capabilities else "/v1/chat/completions"
        raise InvalidRequest(f"The model `{spec.id}` does not support {capability} (its capabilities: "
                             f"{', '.join(spec.capabilities)}); use {endpoint} with it.",
                             code="model_not_supported", param="model")
    where = locate_spec(spec)
    if not where.available:
        raise not_available(spec, where.reason)
    return spec, tool_format_of(spec)


class ModelListView(APIView):
    def get(self, request):
        return Response(model_list(model_entries()))


class ModelDetailView(APIView):
    def get(self, request, model: str):
        return Response(ModelSerializer(model_entry(resolve_model(model))).data)


def server_status() -> dict:
    """What /health answers, and what the front page shows."""
    engine = get_engine()
    state = engine.status()
    group = state.get("distributed")
    return {
        # A distributed group that lost a rank cannot generate for its models any more.
        "status": "unavailable" if group and group["state"] == "lost" else "ok",
        "uptime_seconds": round(time.time() - engine.started_at, 3),
        "default_model": get_registry().default_id,
        **state,
        "blas": load_fast_blas().as_dict(),
    }


def model_entries() -> list[ModelEntry]:
    """Every registered model as /v1/models lists it (filesystem work: off the loop)."""
    return [model_entry(s) for s in get_registry().specs]


class HealthView(APIView):
    def get(self, request):
        body = server_status()
        return Response(body, status=503 if body["status"] == "unavailable" else 200)


@endpoint("chatcmpl-")  # the completion's id is the row's, as OpenAI's look
async def chat_completions(request: HttpRequest, log: CallLog) -> HttpResponse:
    data = await validated_body(request, log, ChatCompletionSerializer)
    # Reading models.yaml and looking for the model's files touch the disk: off the loop.
    spec, tool_format = await sync_to_async(servable_model, thread_sensitive=False)(data["model"], log)
    images = await load_request_images(spec, data["messages"], log)
    reasoning = get_reasoning_format(spec.reasoning)
    chat_request = build_chat_request(data, tool_format=tool_format, images=images, reasoning=reasoning)
    engine = get_engine()
    call = ChatCall(
        log=log, spec=spec,
        events=[engine.stream(spec, one) for one in choice_requests(chat_request, data.get("n") or 1)],
        include_usage=bool((data.get("stream_options") or {}).get("include_usage")),
        tools=chat_request.tools, tool_format=tool_format, reasoning=reasoning,
        logprobs=chat_request.params.logprobs is not None,
    )
    await call.start()
    if data.get("stream"):
        return sse_response(call.stream(), log)
    return json_response(await call.complete(), log)


@endpoint("cmpl-")
async def completions(request: HttpRequest, log: CallLog) -> HttpResponse:
    data = await validated_body(request, log, CreateCompletionSerializer)
    spec, tool_format = await sync_to_async(servable_model, thread_sensitive=False)(data["model"], log)
    engine = get_engine()
    call = CompletionCall(log=log, spec=spec, data=data, tool_format=tool_format,
                          events=[engine.stream(spec, one) for one in completion_requests(data)])
    await call.start()
    if data.get("stream"):
        return sse_response(call.stream(), log)
    return json_response(await call.complete(), log)


@endpoint("embd")
async def embeddings(request: HttpRequest, log: CallLog) -> HttpResponse:
    data = await validated_body(request, log, CreateEmbeddingSerializer)
    spec, _ = await sync_to_async(servable_model, thread_sensitive=False)(data["model"], log, "embeddings")
    log.set(input_count=len(data["input"]))
    events = get_engine().stream(spec, embed_request(data))
    return json_response(await embeddings_body(spec=spec, data=data, events=events, log=log), log)

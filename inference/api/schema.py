"""The OpenAPI document of the /v1 API, built by drf-spectacular and served at /v1/openapi.json.

The DRF views (models) are described by spectacular, their responses added here by view
extensions so views.py stays free of documentation. The chat endpoint is
a plain async Django view (DRF views cannot stream from async code), which spectacular does
not see, so a preprocessing hook adds it, described by `ChatCompletionsSchema`: an APIView
that is never routed and only carries the operation's request and response schemas. The
request schema is ChatCompletionSerializer itself, so the document and the validation are
one contract; likewise the responses are the serializers that render them (responses.py).
Field extensions describe the serializers' hand-written fields.
"""
from __future__ import annotations

from drf_spectacular.extensions import OpenApiSerializerFieldExtension, OpenApiViewExtension
from drf_spectacular.plumbing import build_array_type, build_basic_type, build_object_type
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view, inline_serializer
from rest_framework import serializers
from rest_framework.views import APIView

from .responses import ChatCompletionResponseSerializer, ModelListSerializer, ModelSerializer
from .serializers import ChatCompletionSerializer

CHAT_PATH = "/v1/chat/completions"

ERROR = inline_serializer("Error", {
    "error": inline_serializer("ErrorDetail", {
        "message": serializers.CharField(),
        "type": serializers.CharField(),
        "param": serializers.CharField(allow_null=True),
        "code": serializers.CharField(allow_null=True),
    }),
})

def _errors(*statuses: int) -> dict[int, OpenApiResponse]:
    return {status: OpenApiResponse(ERROR) for status in statuses}


class ChatCompletionsSchema(APIView):
    """Describes POST /v1/chat/completions for the schema; the real view is views.chat_completions."""

    @extend_schema(
        operation_id="createChatCompletion",
        summary="Create a chat completion.",
        description="The whole answer as JSON, or with stream: true server-sent events of "
                    "chat.completion.chunk objects ending in `data: [DONE]`.",
        request=ChatCompletionSerializer,
        responses={200: ChatCompletionResponseSerializer, **_errors(400, 401, 404, 413, 429, 503)},
    )
    def post(self, request):  # pragma: no cover - never routed
        raise NotImplementedError


def add_chat_endpoint(endpoints: list) -> list:
    """PREPROCESSING_HOOK: keep the /v1 endpoints and add the async chat view's description."""
    kept = [e for e in endpoints if e[0].startswith("/v1/")]
    return [*kept, (CHAT_PATH, r"^v1/chat/completions$", "POST", ChatCompletionsSchema.as_view())]


class _Described(OpenApiSerializerFieldExtension):
    """A hand-written serializer field whose JSON Schema is given here."""

    schema: dict

    def map_serializer_field(self, auto_schema, direction):
        return self.schema


_TEXT_PART = build_object_type({"type": {"type": "string", "enum": ["text"]}, "text": build_basic_type(OpenApiTypes.STR)},
                               required=["type", "text"])
_IMAGE_PART = build_object_type({
    "type": {"type": "string", "enum": ["image_url"]},
    "image_url": build_object_type({"url": build_basic_type(OpenApiTypes.STR),
                                    "detail": {"type": "string", "enum": ["auto", "low", "high"]}},
                                   required=["url"]),
}, required=["type", "image_url"])


class ContentFieldSchema(_Described):
    target_class = "inference.api.serializers.ContentField"
    schema = {"oneOf": [build_basic_type(OpenApiTypes.STR), build_array_type({"oneOf": [_TEXT_PART, _IMAGE_PART]})],
              "nullable": True}


class StopFieldSchema(_Described):
    target_class = "inference.api.serializers.StopField"
    schema = {"oneOf": [build_basic_type(OpenApiTypes.STR),
                        {**build_array_type(build_basic_type(OpenApiTypes.STR)), "maxItems": 4}],
              "nullable": True}


class JSONObjectFieldSchema(_Described):
    target_class = "inference.api.fields.JSONObjectField"
    schema = build_object_type(additionalProperties=True)


class ModelListSchema(OpenApiViewExtension):
    target_class = "inference.api.views.ModelListView"

    def view_replacement(self):
        return extend_schema_view(get=extend_schema(
            operation_id="listModels", summary="List the registered models.",
            responses={200: ModelListSerializer, **_errors(401)},
        ))(self.target_class)


class ModelDetailSchema(OpenApiViewExtension):
    target_class = "inference.api.views.ModelDetailView"

    def view_replacement(self):
        return extend_schema_view(get=extend_schema(
            operation_id="retrieveModel", summary="One registered model, by id or alias.",
            responses={200: ModelSerializer, **_errors(401, 404)},
        ))(self.target_class)

"""The OpenAPI document of the /v1 API, built by drf-spectacular and served at /v1/openapi.json.

The DRF views (models) are described by spectacular, their responses added here by view
extensions so views.py stays free of documentation. The generating
endpoints (chat, responses) and embeddings are plain async Django views (DRF views cannot stream from async
code), which spectacular does not see, so a preprocessing hook adds them, each described by an
APIView that is never routed and only carries the operation's request and response schemas. The
request schema is ChatCompletionSerializer itself, so the document and the validation are
one contract; likewise the responses are the serializers that render them (responses.py).
Field extensions describe the serializers' hand-written fields.
"""
from __future__ import annotations

from drf_spectacular.extensions import OpenApiSerializerFieldExtension, OpenApiViewExtension
from drf_spectacular.plumbing import build_array_type, build_basic_type, build_object_type
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view, inline_serializer,
)
from rest_framework import serializers
from rest_framework.views import APIView

from .anthropic import schema as anthropic_schema
from .responses import (
    ChatCompletionResponseSerializer, CompletionResponseSerializer, EmbeddingResponseSerializer, ModelListSerializer, ModelSerializer,
)
from .responses_api.objects import DeletedResponseSerializer, InputItemListSerializer, ResponseObjectSerializer
from .responses_api.serializers import CreateResponseSerializer
from .serializers import ChatCompletionSerializer, CreateCompletionSerializer, CreateEmbeddingSerializer

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


class CompletionsSchema(APIView):
    """Describes POST /v1/completions for the schema; the real view is views.completions."""

    @extend_schema(
        operation_id="createCompletion",
        summary="Create a (legacy) completion.",
        description="The prompt continued as it is, no chat template; with `suffix`, fill-in-the-middle "
                    "in the model's FIM tokens (a 400 for a model without). The whole answer as JSON, or "
                    "with stream: true server-sent events of text_completion objects ending in `data: [DONE]`.",
        request=CreateCompletionSerializer,
        responses={200: CompletionResponseSerializer, **_errors(400, 401, 404, 413, 429, 503)},
    )
    def post(self, request):  # pragma: no cover - never routed
        raise NotImplementedError


class EmbeddingsSchema(APIView):
    """Describes POST /v1/embeddings for the schema; the real view is views.embeddings."""

    @extend_schema(
        operation_id="createEmbedding",
        summary="Create embeddings.",
        description="One vector per input, in input order, from a model with backend: embedding. "
                    "`truncate: true` (an extension) cuts inputs longer than the model's context "
                    "instead of refusing them.",
        request=CreateEmbeddingSerializer,
        responses={200: EmbeddingResponseSerializer, **_errors(400, 401, 404, 413, 429, 503)},
    )
    def post(self, request):  # pragma: no cover - never routed
        raise NotImplementedError


RESPONSE_ID = OpenApiParameter("response_id", str, OpenApiParameter.PATH, description="A stored response's id.")


class ResponsesSchema(APIView):
    """Describes POST /v1/responses; the real view is responses_api.views.create_response."""

    @extend_schema(
        operation_id="createResponse",
        summary="Create a model response (the Responses API).",
        description="The response object as JSON, or with stream: true server-sent events "
                    "(response.created ... response.completed, each with its sequence_number). "
                    "With store (the default) the response is kept for previous_response_id.",
        request=CreateResponseSerializer,
        responses={200: ResponseObjectSerializer, **_errors(400, 401, 404, 413, 429, 503)},
    )
    def post(self, request):  # pragma: no cover - never routed
        raise NotImplementedError


class ResponseDetailSchema(APIView):
    """Describes GET and DELETE /v1/responses/{response_id}."""

    @extend_schema(operation_id="getResponse", summary="A stored response.", parameters=[RESPONSE_ID],
                   responses={200: ResponseObjectSerializer, **_errors(401, 404)})
    def get(self, request, response_id):  # pragma: no cover - never routed
        raise NotImplementedError

    @extend_schema(operation_id="deleteResponse", summary="Delete a stored response.", parameters=[RESPONSE_ID],
                   responses={200: DeletedResponseSerializer, **_errors(401, 404)})
    def delete(self, request, response_id):  # pragma: no cover - never routed
        raise NotImplementedError


class ResponseInputItemsSchema(APIView):
    """Describes GET /v1/responses/{response_id}/input_items."""

    @extend_schema(
        operation_id="listInputItems", summary="A stored response's input items.",
        parameters=[
            RESPONSE_ID,
            OpenApiParameter("limit", {"type": "integer", "minimum": 1, "maximum": 100}, description="Default 20."),
            OpenApiParameter("order", str, enum=["asc", "desc"], description="desc (newest first) by default."),
            OpenApiParameter("after", str, description="An item id: the page starts past it."),
        ],
        responses={200: InputItemListSerializer, **_errors(400, 401, 404)},
    )
    def get(self, request, response_id):  # pragma: no cover - never routed
        raise NotImplementedError


MODEL_ID = OpenApiParameter("model", str, OpenApiParameter.PATH, description="A model's id or alias.")


class ModelLoadSchema(APIView):
    """Describes POST /v1/models/{model}/load; the real view is control.load_model."""

    @extend_schema(
        operation_id="loadModel", summary="Load a model (residency control).", parameters=[MODEL_ID],
        description="Answers once it is resident. Under MLX_SERVER_MEMORY_BUDGET the least recently "
                    "used unpinned models make room; one that cannot fit is a 503 insufficient_memory. "
                    "Needs the API key when one is set, or a staff login.",
        request=None, responses={200: ModelSerializer, **_errors(400, 401, 403, 404, 503)},
    )
    def post(self, request, model):  # pragma: no cover - never routed
        raise NotImplementedError


class ModelUnloadSchema(APIView):
    """Describes POST /v1/models/{model}/unload; the real view is control.unload_model."""

    @extend_schema(
        operation_id="unloadModel", summary="Unload a model (its prompt cache saved to disk).",
        parameters=[MODEL_ID], request=None, responses={200: ModelSerializer, **_errors(401, 403, 404)},
    )
    def post(self, request, model):  # pragma: no cover - never routed
        raise NotImplementedError


# The async views spectacular cannot see, each with the APIView that describes it.
ASYNC_ENDPOINTS = [
    ("/v1/chat/completions", r"^v1/chat/completions$", "POST", ChatCompletionsSchema),
    ("/v1/completions", r"^v1/completions$", "POST", CompletionsSchema),
    ("/v1/embeddings", r"^v1/embeddings$", "POST", EmbeddingsSchema),
    ("/v1/responses", r"^v1/responses$", "POST", ResponsesSchema),
    ("/v1/responses/{response_id}", r"^v1/responses/(?P<response_id>[^/]+)$", "GET", ResponseDetailSchema),
    ("/v1/responses/{response_id}", r"^v1/responses/(?P<response_id>[^/]+)$", "DELETE", ResponseDetailSchema),
    ("/v1/responses/{response_id}/input_items", r"^v1/responses/(?P<response_id>[^/]+)/input_items$", "GET",
     ResponseInputItemsSchema),
    ("/v1/models/{model}/load", r"^v1/models/(?P<model>.+)/load$", "POST", ModelLoadSchema),
    ("/v1/models/{model}/unload", r"^v1/models/(?P<model>.+)/unload$", "POST", ModelUnloadSchema),
    *anthropic_schema.ENDPOINTS,
]


def add_async_endpoints(endpoints: list) -> list:
    """PREPROCESSING_HOOK: keep the /v1 endpoints and add the async views' descriptions."""
    kept = [e for e in endpoints if e[0].startswith("/v1/")]
    return [*kept, *((path, regex, method, schema.as_view()) for path, regex, method, schema in ASYNC_ENDPOINTS)]


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


class InputFieldSchema(_Described):
    target_class = "inference.api.responses_api.serializers.InputField"
    schema = {"oneOf": [build_basic_type(OpenApiTypes.STR),
                        build_array_type(build_object_type(additionalProperties=True))]}


class TextFormatFieldSchema(_Described):
    target_class = "inference.api.responses_api.serializers.TextFormatField"
    schema = build_object_type({"type": {"type": "string", "enum": ["text", "json_object", "json_schema"]}},
                               required=["type"], additionalProperties=True)


_TOKENS = {**build_array_type(build_basic_type(OpenApiTypes.INT)), "minItems": 1}


class TextsOrTokensFieldSchema(_Described):
    target_class = "inference.api.serializers.TextsOrTokensField"
    schema = {"oneOf": [
        {**build_basic_type(OpenApiTypes.STR), "minLength": 1},
        {**build_array_type({**build_basic_type(OpenApiTypes.STR), "minLength": 1}), "minItems": 1, "maxItems": 2048},
        _TOKENS,
        {**build_array_type(_TOKENS), "minItems": 1, "maxItems": 2048},
    ]}


class EmbeddingVectorFieldSchema(_Described):
    target_class = "inference.api.responses.EmbeddingVectorField"
    schema = {"oneOf": [build_array_type(build_basic_type(OpenApiTypes.FLOAT)), build_basic_type(OpenApiTypes.STR)]}


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

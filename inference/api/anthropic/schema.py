"""The Messages endpoints in /v1/openapi.json: like the chat view, they are plain async views
that spectacular does not see, so never-routed APIViews carry their operations (added by
api/schema.py's preprocessing hook); the request schemas are the validating serializers."""
from __future__ import annotations

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.views import APIView

from .serializers import MessageCountTokensParamsSerializer, MessageCreateParamsSerializer

ERROR = OpenApiResponse(inline_serializer("AnthropicError", {
    "type": serializers.CharField(),
    "error": inline_serializer("AnthropicErrorDetail", {"type": serializers.CharField(),
                                                        "message": serializers.CharField()}),
}))
MESSAGE = inline_serializer("AnthropicMessage", {
    "id": serializers.CharField(), "type": serializers.CharField(), "role": serializers.CharField(),
    "content": serializers.ListField(child=serializers.DictField()), "model": serializers.CharField(),
    "stop_reason": serializers.CharField(allow_null=True), "stop_sequence": serializers.CharField(allow_null=True),
    "usage": serializers.DictField(),
})
ERRORS = {status: ERROR for status in (400, 401, 404, 413, 500, 529)}

_TEXT = {"type": "object", "required": ["type", "text"],
         "properties": {"type": {"type": "string", "enum": ["text"]}, "text": {"type": "string"}}}
_IMAGE = {"type": "object", "required": ["type", "source"], "properties": {
    "type": {"type": "string", "enum": ["image"]},
    "source": {"type": "object", "required": ["type"], "properties": {
        "type": {"type": "string", "enum": ["base64", "url"]},
        "media_type": {"type": "string", "enum": ["image/jpeg", "image/png", "image/gif", "image/webp"]},
        "data": {"type": "string"}, "url": {"type": "string"}}}}}
_TOOL_USE = {"type": "object", "required": ["type", "id", "name", "input"], "properties": {
    "type": {"type": "string", "enum": ["tool_use"]}, "id": {"type": "string"}, "name": {"type": "string"},
    "input": {"type": "object"}}}
_TOOL_RESULT = {"type": "object", "required": ["type", "tool_use_id"], "properties": {
    "type": {"type": "string", "enum": ["tool_result"]}, "tool_use_id": {"type": "string"},
    "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"oneOf": [_TEXT, _IMAGE]}}]},
    "is_error": {"type": "boolean"}}}
_THINKING = {"type": "object", "required": ["type", "thinking"], "properties": {
    "type": {"type": "string", "enum": ["thinking"]}, "thinking": {"type": "string"}, "signature": {"type": "string"}}}


class ContentFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "inference.api.anthropic.serializers.ContentField"

    def map_serializer_field(self, auto_schema, direction):
        return {"oneOf": [{"type": "string"}, {"type": "array", "items": {
            "oneOf": [_TEXT, _IMAGE, _TOOL_USE, _TOOL_RESULT, _THINKING]}}]}


class SystemFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "inference.api.anthropic.serializers.SystemField"

    def map_serializer_field(self, auto_schema, direction):
        return {"oneOf": [{"type": "string"}, {"type": "array", "items": _TEXT}], "nullable": True}


class MessagesSchema(APIView):
    """Describes POST /v1/messages; the real view is anthropic.views.messages."""

    @extend_schema(operation_id="createMessage", summary="Create a message (Anthropic's Messages API).",
                   description="The message object, or with stream: true Anthropic's server-sent events.",
                   request=MessageCreateParamsSerializer, responses={200: MESSAGE, **ERRORS})
    def post(self, request):  # pragma: no cover - never routed
        raise NotImplementedError


class CountTokensSchema(APIView):
    """Describes POST /v1/messages/count_tokens; the real view is anthropic.views.count_tokens."""

    @extend_schema(operation_id="countMessageTokens", summary="Count a message request's prompt tokens.",
                   request=MessageCountTokensParamsSerializer,
                   responses={200: inline_serializer("MessageTokensCount", {"input_tokens": serializers.IntegerField()}),
                              **ERRORS})
    def post(self, request):  # pragma: no cover - never routed
        raise NotImplementedError


ENDPOINTS = [
    ("/v1/messages", r"^v1/messages$", "POST", MessagesSchema),
    ("/v1/messages/count_tokens", r"^v1/messages/count_tokens$", "POST", CountTokensSchema),
]

"""The Responses API's response shapes, as serializers that document them in /v1/openapi.json
(the objects themselves are built in call.py and items.py, and held to OpenAI's schemas in the
tests). Output and input items are tagged unions, documented as objects."""
from __future__ import annotations

from rest_framework import serializers

from ..fields import JSONObjectField


class InputTokensDetailsSerializer(serializers.Serializer):
    cached_tokens = serializers.IntegerField(help_text="Input tokens reused from the prefix cache.")
    cache_write_tokens = serializers.IntegerField(help_text="Input tokens prefilled (and kept in the cache).")


class OutputTokensDetailsSerializer(serializers.Serializer):
    reasoning_tokens = serializers.IntegerField()


class ResponseUsageSerializer(serializers.Serializer):
    input_tokens = serializers.IntegerField()
    input_tokens_details = InputTokensDetailsSerializer()
    output_tokens = serializers.IntegerField()
    output_tokens_details = OutputTokensDetailsSerializer()
    total_tokens = serializers.IntegerField()


class ResponseErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class ResponseObjectSerializer(serializers.Serializer):
    """The response of POST /v1/responses (stream: false) and GET /v1/responses/{id}."""

    id = serializers.CharField()
    object = serializers.CharField()
    created_at = serializers.IntegerField()
    status = serializers.ChoiceField(choices=("completed", "incomplete", "failed", "in_progress", "cancelled"))
    completed_at = serializers.IntegerField(allow_null=True)
    error = ResponseErrorSerializer(allow_null=True)
    incomplete_details = JSONObjectField(allow_null=True, help_text='{"reason": "max_output_tokens"} when cut.')
    instructions = serializers.CharField(allow_null=True)
    max_output_tokens = serializers.IntegerField(allow_null=True)
    model = serializers.CharField()
    output = serializers.ListField(child=JSONObjectField(),
                                   help_text="message (output_text parts) and function_call items.")
    output_text = serializers.CharField(allow_blank=True, help_text="The output messages' text, joined.")
    parallel_tool_calls = serializers.BooleanField()
    previous_response_id = serializers.CharField(allow_null=True)
    reasoning = JSONObjectField()
    store = serializers.BooleanField()
    temperature = serializers.FloatField()
    text = JSONObjectField()
    tool_choice = serializers.JSONField()
    tools = serializers.ListField(child=JSONObjectField())
    top_p = serializers.FloatField()
    truncation = serializers.CharField()
    usage = ResponseUsageSerializer(required=False, help_text="Once the response is complete.")
    metadata = serializers.DictField(child=serializers.CharField())


class DeletedResponseSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    deleted = serializers.BooleanField()


class InputItemListSerializer(serializers.Serializer):
    object = serializers.CharField()
    data = serializers.ListField(child=JSONObjectField(), help_text="The response's input items, with ids.")
    has_more = serializers.BooleanField()
    first_id = serializers.CharField(allow_null=True)
    last_id = serializers.CharField(allow_null=True)

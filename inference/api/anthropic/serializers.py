"""The Messages API request contract, as DRF serializers (Anthropic's API reference: Messages,
Count tokens). Content blocks are checked here, whole, so a request that reaches the
conversion is well formed: each block's type is allowed for its role, a `tool_result` answers
a `tool_use` of the message before it, an image says what it is."""
from __future__ import annotations

import re
from typing import Any

from rest_framework import serializers

from ..fields import (
    JSONObjectField, StrictBooleanField, StrictCharField, StrictFloatField, StrictIntegerField,
)
from ..serializers import INT64, MAX_MESSAGES, MAX_TOOLS

TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,128}")
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
MAX_STOP_SEQUENCES = 64
# Which block types each role may send; thinking blocks come back in assistant turns.
BLOCKS_OF = {
    "user": ("text", "image", "tool_result"),
    "assistant": ("text", "tool_use", "thinking", "redacted_thinking"),
}
TOOL_RESULT_BLOCKS = ("text", "image")


def _fail(where: str, message: str) -> None:
    raise serializers.ValidationError(f"{where}: {message}" if where else message)


def _string(block: dict, key: str, where: str) -> str:
    value = block.get(key)
    if not isinstance(value, str):
        _fail(f"{where}.{key}", "must be a string.")
    return value


def check_image(block: dict, where: str) -> None:
    source = block.get("source")
    if not isinstance(source, dict):
        _fail(f"{where}.source", "must be an object.")
    kind = source.get("type")
    if kind == "base64":
        if source.get("media_type") not in IMAGE_TYPES:
            _fail(f"{where}.source.media_type", f"must be one of {', '.join(IMAGE_TYPES)}.")
        if not _string(source, "data", f"{where}.source"):
            _fail(f"{where}.source.data", "must not be empty.")
    elif kind == "url":
        if not _string(source, "url", f"{where}.source"):
            _fail(f"{where}.source.url", "must not be empty.")
    else:
        _fail(f"{where}.source.type", f"{kind!r} is not a supported image source (base64, url).")


def check_block(block: Any, allowed: tuple[str, ...], where: str) -> None:
    if not isinstance(block, dict):
        _fail(where, "each content block must be an object.")
    kind = block.get("type")
    if kind not in allowed:
        _fail(f"{where}.type", f"{kind!r} is not a content block type this message can hold ({', '.join(allowed)}).")
    if kind == "text":
        _string(block, "text", where)
    elif kind == "image":
        check_image(block, where)
    elif kind == "tool_use":
        _string(block, "id", where)
        _string(block, "name", where)
        if not isinstance(block.get("input"), dict):
            _fail(f"{where}.input", "must be an object.")
    elif kind == "tool_result":
        _string(block, "tool_use_id", where)
        content = block.get("content", "")
        if isinstance(content, list):
            for k, part in enumerate(content):
                check_block(part, TOOL_RESULT_BLOCKS, f"{where}.content[{k}]")
        elif not isinstance(content, str):
            _fail(f"{where}.content", "must be a string or an array of text and image blocks.")
        if "is_error" in block and not isinstance(block["is_error"], bool):
            _fail(f"{where}.is_error", "must be a boolean.")
    elif kind == "thinking":
        _string(block, "thinking", where)
    elif kind == "redacted_thinking":
        _string(block, "data", where)


class ContentField(serializers.Field):
    """A message's content: a string or a non-empty array of content blocks (kept as sent)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str):
            return data
        if not isinstance(data, list):
            raise serializers.ValidationError("Must be a string or an array of content blocks.")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class SystemField(ContentField):
    """The system prompt: a string or an array of text blocks."""

    def to_internal_value(self, data: Any) -> Any:
        data = super().to_internal_value(data)
        if isinstance(data, list):
            for j, block in enumerate(data):
                check_block(block, ("text",), f"[{j}]")
        return data


class MessageParamSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=tuple(BLOCKS_OF))
    content = ContentField()

    def validate(self, attrs: dict) -> dict:
        content = attrs["content"]
        if content == [] and attrs["role"] == "user":  # it would leave nothing to prompt with
            raise serializers.ValidationError({"content": "A user message needs at least one content block."})
        if isinstance(content, list):
            for j, block in enumerate(content):
                try:
                    check_block(block, BLOCKS_OF[attrs["role"]], f"[{j}]")
                except serializers.ValidationError as exc:
                    raise serializers.ValidationError({"content": exc.detail}) from None
        return attrs


class ToolParamSerializer(serializers.Serializer):
    """A client tool; Anthropic's server tools (web search, code execution...) run on
    Anthropic's side and have no equivalent here."""

    type = serializers.ChoiceField(choices=("custom",), required=False, allow_null=True,
                                   error_messages={"invalid_choice": "{input!r}: only custom tools (name, "
                                                   "description, input_schema) are supported by this server."})
    name = StrictCharField()
    description = StrictCharField(required=False, allow_blank=True)
    input_schema = JSONObjectField()
    cache_control = JSONObjectField(required=False, allow_null=True)

    def validate_name(self, value: str) -> str:
        if not TOOL_NAME.fullmatch(value):
            raise serializers.ValidationError("Must be 1 to 128 letters, digits, underscores or dashes.")
        return value

    def validate_input_schema(self, value: dict) -> dict:
        if value.get("type") != "object":
            raise serializers.ValidationError('Must be a JSON Schema of "type": "object".')
        return value


class ToolChoiceParamSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=("auto", "any", "tool", "none"))
    name = StrictCharField(required=False)
    disable_parallel_tool_use = StrictBooleanField(required=False)

    def validate(self, attrs: dict) -> dict:
        if attrs["type"] == "tool" and not attrs.get("name"):
            raise serializers.ValidationError({"name": 'Required when type is "tool".'})
        return attrs


class ThinkingParamSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=("enabled", "disabled", "adaptive"))
    budget_tokens = StrictIntegerField(required=False, min_value=1024, max_value=INT64)

    def validate(self, attrs: dict) -> dict:
        if attrs["type"] == "enabled" and "budget_tokens" not in attrs:
            raise serializers.ValidationError({"budget_tokens": 'Required when type is "enabled".'})
        return attrs


class MetadataParamSerializer(serializers.Serializer):
    user_id = StrictCharField(required=False, allow_null=True, allow_blank=True)


class MessageCountTokensParamsSerializer(serializers.Serializer):
    """What POST /v1/messages/count_tokens takes: the prompt side of a message request."""

    model = StrictCharField(max_length=512)
    messages = MessageParamSerializer(many=True, allow_empty=False, max_length=MAX_MESSAGES)
    system = SystemField(required=False, allow_null=True)
    tools = ToolParamSerializer(many=True, required=False, allow_null=True, max_length=MAX_TOOLS)
    tool_choice = ToolChoiceParamSerializer(required=False, allow_null=True)
    thinking = ThinkingParamSerializer(required=False, allow_null=True)

    def validate(self, attrs: dict) -> dict:
        check_conversation(attrs["messages"])
        choice, tools = attrs.get("tool_choice") or {}, attrs.get("tools") or []
        if choice.get("type") in ("any", "tool") and not tools:
            raise serializers.ValidationError({"tool_choice": "Needs tools to choose from."})
        if choice.get("type") == "tool" and choice["name"] not in {t["name"] for t in tools}:
            raise serializers.ValidationError({"tool_choice": {"name": f"{choice['name']!r} is not one of the tools."}})
        return attrs


def check_conversation(messages: list[dict]) -> None:
    """Each tool_result answers a tool_use of the message just before it, as Anthropic requires."""
    previous: set[str] = set()
    for i, message in enumerate(messages):
        blocks = message["content"] if isinstance(message["content"], list) else []
        for j, block in enumerate(blocks):
            if block["type"] == "tool_result" and block["tool_use_id"] not in previous:
                raise serializers.ValidationError({"messages": {i: {"content": {j: [
                    f"unexpected `tool_use_id` found in `tool_result` blocks: {block['tool_use_id']}. Each "
                    "`tool_result` block must have a corresponding `tool_use` block in the previous message."
                ]}}}})
        previous = {b["id"] for b in blocks if b["type"] == "tool_use"}


class MessageCreateParamsSerializer(MessageCountTokensParamsSerializer):
    """What POST /v1/messages takes."""

    max_tokens = StrictIntegerField(min_value=1, max_value=INT64)
    stop_sequences = serializers.ListField(child=StrictCharField(trim_whitespace=False), required=False, allow_null=True,
                                           max_length=MAX_STOP_SEQUENCES)
    temperature = StrictFloatField(required=False, allow_null=True, min_value=0.0, max_value=1.0)
    top_p = StrictFloatField(required=False, allow_null=True, min_value=0.0, max_value=1.0)
    top_k = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=INT64)
    metadata = MetadataParamSerializer(required=False, allow_null=True)
    # Ollama's keep_alive, as on chat completions: seconds the model stays loaded after this request.
    keep_alive = StrictFloatField(required=False, allow_null=True)
    stream = StrictBooleanField(required=False, allow_null=True, default=False)

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        thinking = attrs.get("thinking") or {}
        if thinking.get("type") == "enabled" and thinking["budget_tokens"] >= attrs["max_tokens"]:
            raise serializers.ValidationError({"thinking": {"budget_tokens": "Must be less than max_tokens."}})
        return attrs

"""The Responses API request contract (POST /v1/responses), as DRF serializers.

Input items are checked by hand, as chat's ContentField does: an item is a tagged union whose
members differ in every key, and an error must name the exact place (`input[2].content[0].type`).
Errors raised as nested dicts keyed by index become that path (errors.first_validation_error).
"""
from __future__ import annotations

from typing import Any

from rest_framework import serializers

from ...constraints import ConstraintError, check_schema
from ..fields import JSONObjectField, StrictBooleanField, StrictCharField, StrictFloatField, StrictIntegerField
from ..serializers import INT64, MAX_MESSAGES, MAX_TOOLS, SCHEMA_NAME, TOOL_CHOICES, check_choice

MESSAGE_ROLES = ("user", "system", "developer", "assistant")
INPUT_PARTS = ("input_text", "input_image")
ASSISTANT_PARTS = ("output_text", "refusal", "input_text")
ITEM_TYPES = ("message", "function_call", "function_call_output", "reasoning")
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
MAX_METADATA = 16


def refuse(path: list[str | int], message: str) -> None:
    """Raise `message` at `path` inside the field (ints are list indexes)."""
    detail: Any = message
    for key in reversed(path):
        detail = {key: detail}
    raise serializers.ValidationError(detail)


def _string(item: dict, key: str, path: list, *, required: bool = True) -> None:
    if key not in item and not required:
        return
    if not isinstance(item.get(key), str):
        refuse([*path, key], "Must be a string.")


def _parts(content: Any, path: list, allowed: tuple[str, ...]) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        refuse(path, "Must be a string or an array of content parts.")
    for j, part in enumerate(content):
        where = [*path, j]
        if not isinstance(part, dict):
            refuse(where, "Each content part must be an object.")
        kind = part.get("type")
        if kind not in allowed:
            why = " (files are not supported by this server)" if kind == "input_file" else ""
            refuse([*where, "type"], f"{kind!r} is not a supported content part type here ({', '.join(allowed)}){why}.")
        if kind == "input_image":
            if part.get("file_id") is not None:
                refuse([*where, "file_id"], "File ids are not supported (this server has no Files API); send image_url.")
            if not isinstance(part.get("image_url"), str) or not part["image_url"]:
                refuse([*where, "image_url"], "Must be a non-empty string (a data URI or an http(s) URL).")
            if part.get("detail", "auto") not in ("auto", "low", "high"):
                refuse([*where, "detail"], "Must be auto, low or high.")
        elif kind == "refusal":
            _string(part, "refusal", where)
        else:
            _string(part, "text", where)


def check_item(item: Any, path: list) -> None:
    """One input item: a message (with or without `type`), a function call or its output, or
    an earlier reasoning item."""
    if not isinstance(item, dict):
        refuse(path, "Each input item must be an object.")
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        role = item.get("role")
        if role not in MESSAGE_ROLES:
            refuse([*path, "role"], f"{role!r} is not one of {', '.join(MESSAGE_ROLES)}.")
        if "content" not in item:
            refuse([*path, "content"], "This field is required.")
        _parts(item["content"], [*path, "content"], ASSISTANT_PARTS if role == "assistant" else INPUT_PARTS)
    elif kind == "function_call":
        for key in ("call_id", "name", "arguments"):
            _string(item, key, path)
    elif kind == "function_call_output":
        _string(item, "call_id", path)
        if not isinstance(item.get("output"), str):
            _parts(item.get("output"), [*path, "output"], ("input_text",))
    elif kind == "reasoning":
        if not isinstance(item.get("summary", []), list):
            refuse([*path, "summary"], "Must be an array of summary_text parts.")
    else:
        refuse([*path, "type"], f"{kind!r} is not a supported input item type ({', '.join(ITEM_TYPES)}).")


class InputField(serializers.Field):
    """`input`: a string (one user message) or a list of input items."""

    def to_internal_value(self, data: Any) -> str | list[dict]:
        if isinstance(data, str):
            return data
        if not isinstance(data, list):
            self.fail("invalid")
        if len(data) > MAX_MESSAGES:
            raise serializers.ValidationError(f"Ensure this field has no more than {MAX_MESSAGES} items.")
        for i, item in enumerate(data):
            check_item(item, [i])
        return data

    def to_representation(self, value: Any) -> Any:
        return value

    default_error_messages = {"invalid": "Must be a string or an array of input items."}


class FunctionToolSerializer(serializers.Serializer):
    """A function tool, flat as the Responses API has it; any other tool type is refused."""

    type = StrictCharField()
    name = StrictCharField(max_length=256)
    description = StrictCharField(required=False, allow_null=True, allow_blank=True)
    parameters = JSONObjectField(required=False, allow_null=True)
    strict = StrictBooleanField(required=False, allow_null=True)

    def to_internal_value(self, data: Any) -> dict:
        if isinstance(data, dict) and data.get("type") != "function":
            raise serializers.ValidationError({"type": (
                f"{data.get('type')!r} tools are not supported by this server: only function tools "
                "run here (the client runs them and sends back function_call_output)."
            )})
        return super().to_internal_value(data)


class TextFormatField(serializers.Field):
    """`text.format`: text, json_object or json_schema (name, schema, strict, description)."""

    def to_internal_value(self, data: Any) -> dict:
        if not isinstance(data, dict):
            raise serializers.ValidationError("Must be an object with a type.")
        kind = data.get("type")
        if kind in ("text", "json_object"):
            return data
        if kind != "json_schema":
            refuse(["type"], f"{kind!r} is not one of 'text', 'json_object', 'json_schema'.")
        if not isinstance(data.get("name"), str) or not SCHEMA_NAME.fullmatch(data["name"]):
            refuse(["name"], "Must be 1 to 64 letters, digits, underscores or dashes.")
        if not isinstance(data.get("schema"), dict):
            refuse(["schema"], "Must be a JSON Schema object.")
        if data.get("strict") is not None and not isinstance(data["strict"], bool):
            refuse(["strict"], "Must be a boolean.")
        try:
            check_schema(data["schema"], "text.format.schema")
        except ConstraintError as exc:
            refuse(["schema"], str(exc))
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class TextSerializer(serializers.Serializer):
    format = TextFormatField(required=False, allow_null=True)
    verbosity = serializers.ChoiceField(choices=("low", "medium", "high"), required=False, allow_null=True)


class ReasoningSerializer(serializers.Serializer):
    effort = serializers.ChoiceField(choices=EFFORTS, required=False, allow_null=True)
    summary = serializers.ChoiceField(choices=("auto", "concise", "detailed"), required=False, allow_null=True)


class ResponseStreamOptionsSerializer(serializers.Serializer):
    include_obfuscation = StrictBooleanField(required=False, allow_null=True)


class CreateResponseSerializer(serializers.Serializer):
    """POST /v1/responses. Fields of OpenAI's that depend on its hosted services (background
    runs, conversations, prompt templates) are refused by name rather than ignored."""

    model = StrictCharField(max_length=512)
    input = InputField()
    instructions = StrictCharField(required=False, allow_null=True, allow_blank=True, trim_whitespace=False)
    tools = FunctionToolSerializer(many=True, required=False, allow_null=True, max_length=MAX_TOOLS)
    tool_choice = serializers.JSONField(required=False, allow_null=True)
    parallel_tool_calls = StrictBooleanField(required=False, allow_null=True)
    max_output_tokens = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=INT64)
    max_tool_calls = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=INT64)
    temperature = StrictFloatField(required=False, allow_null=True, min_value=0.0, max_value=2.0)
    top_p = StrictFloatField(required=False, allow_null=True, min_value=0.0, max_value=1.0)
    top_logprobs = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=20)
    # Ollama's keep_alive, as on chat completions: seconds the model stays loaded after this request.
    keep_alive = StrictFloatField(required=False, allow_null=True)
    text = TextSerializer(required=False, allow_null=True)
    reasoning = ReasoningSerializer(required=False, allow_null=True)
    store = StrictBooleanField(required=False, allow_null=True)
    metadata = serializers.DictField(child=StrictCharField(max_length=512, allow_blank=True),
                                     required=False, allow_null=True)
    previous_response_id = StrictCharField(required=False, allow_null=True, max_length=64)
    truncation = serializers.ChoiceField(choices=("auto", "disabled"), required=False, allow_null=True)
    stream = StrictBooleanField(required=False, allow_null=True)
    stream_options = ResponseStreamOptionsSerializer(required=False, allow_null=True)
    include = serializers.ListField(child=StrictCharField(), required=False, allow_null=True)
    user = StrictCharField(required=False, allow_blank=True)
    safety_identifier = StrictCharField(required=False, allow_null=True, allow_blank=True, max_length=64)
    prompt_cache_key = StrictCharField(required=False, allow_null=True, allow_blank=True)
    service_tier = StrictCharField(required=False, allow_null=True)
    background = StrictBooleanField(required=False, allow_null=True)
    conversation = serializers.JSONField(required=False, allow_null=True)
    prompt = serializers.JSONField(required=False, allow_null=True)

    def validate_metadata(self, value: dict | None) -> dict | None:
        if value and (len(value) > MAX_METADATA or any(len(key) > 64 for key in value)):
            raise serializers.ValidationError(f"At most {MAX_METADATA} keys of up to 64 characters.")
        return value

    def validate_background(self, value: bool | None) -> bool | None:
        if value:
            raise serializers.ValidationError("Background responses are not supported by this server.")
        return value

    def validate_conversation(self, value: Any) -> None:
        if value is not None:
            raise serializers.ValidationError("Conversations are not supported; use previous_response_id.")

    def validate_prompt(self, value: Any) -> None:
        if value is not None:
            raise serializers.ValidationError("Prompt templates are not supported; send instructions and input.")

    def validate_tool_choice(self, value: Any) -> Any:
        if value is None or value in TOOL_CHOICES:
            return value
        if isinstance(value, dict) and value.get("type") == "function" \
                and isinstance(value.get("name"), str) and value["name"]:
            return value
        raise serializers.ValidationError(
            'Must be "none", "auto", "required" or {"type": "function", "name": ...} '
            "(only function tools run on this server)."
        )

    def validate(self, attrs: dict) -> dict:
        choice = attrs.get("tool_choice")
        check_choice(attrs, choice["name"] if isinstance(choice, dict) else None,
                     {t["name"] for t in attrs.get("tools") or []})
        return attrs

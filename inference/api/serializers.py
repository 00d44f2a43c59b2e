"""The OpenAI request contracts (chat completions, embeddings), as DRF serializers: validation is
the contract."""
from __future__ import annotations

import re
from typing import Any, Callable

from django.conf import settings
from rest_framework import serializers

from ..constraints import ConstraintError, check_schema

from .fields import (
    JSONObjectField, StrictBooleanField, StrictCharField, StrictFloatField, StrictIntegerField,
)

ROLES = ("system", "developer", "user", "assistant", "tool")
INT64 = 2**63 - 1
# Validation walks every item: bounds keep one huge body from taking the CPU for minutes.
MAX_MESSAGES = 10_000
MAX_TOOLS = 128  # OpenAI's own limit
SCHEMA_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
TOOL_CHOICES = ("none", "auto", "required")
# The OpenAPI document's ReasoningEffort enum (null: the template's default).
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
# apply_chat_template's own arguments and what the server passes itself: not template variables.
RESERVED_TEMPLATE_KWARGS = frozenset({
    "conversation", "messages", "tools", "documents", "chat_template", "add_generation_prompt",
    "continue_final_message", "tokenize", "padding", "truncation", "max_length", "return_tensors",
    "return_dict", "return_assistant_tokens_mask", "tokenizer_kwargs", "processor_kwargs",
})


class ContentField(serializers.Field):
    """Message content: a string, a list of typed parts, or null (assistant turns only)."""

    def to_internal_value(self, data: Any) -> Any:
        if data is None or isinstance(data, str):
            return data
        if not isinstance(data, list):
            raise serializers.ValidationError("Must be a string or an array of content parts.")
        for j, part in enumerate(data):
            where = f"[{j}]"
            if not isinstance(part, dict):
                raise serializers.ValidationError(f"{where}: each content part must be an object.")
            kind = part.get("type")
            if kind == "text":
                if not isinstance(part.get("text"), str):
                    raise serializers.ValidationError(f"{where}.text: must be a string.")
            elif kind == "image_url":
                image = part.get("image_url")
                if isinstance(image, str):  # a common client shortcut
                    part["image_url"] = image = {"url": image}
                if not isinstance(image, dict) or not isinstance(image.get("url"), str) or not image["url"]:
                    raise serializers.ValidationError(f"{where}.image_url.url: must be a non-empty string.")
                if image.get("detail", "auto") not in ("auto", "low", "high"):
                    raise serializers.ValidationError(f"{where}.image_url.detail: must be auto, low or high.")
            else:
                raise serializers.ValidationError(
                    f"{where}.type: {kind!r} is not a supported content part type (text, image_url)."
                )
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class MessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=ROLES)
    content = ContentField(required=False, allow_null=True)
    name = StrictCharField(required=False, max_length=256)
    tool_calls = serializers.ListField(child=JSONObjectField(), required=False, allow_null=True)
    tool_call_id = StrictCharField(required=False)

    def validate(self, attrs: dict) -> dict:
        role, content = attrs["role"], attrs.get("content")
        if role == "assistant":
            if content is None and not attrs.get("tool_calls"):
                raise serializers.ValidationError({"content": "An assistant message needs content or tool_calls."})
        elif content is None:
            raise serializers.ValidationError({"content": f"A {role} message needs content."})
        if role in ("system", "developer", "assistant", "tool") and isinstance(content, list):
            if any(part["type"] != "text" for part in content):
                raise serializers.ValidationError({"content": f"A {role} message can only hold text parts."})
        if role == "tool" and not attrs.get("tool_call_id"):
            raise serializers.ValidationError({"tool_call_id": "A tool message needs tool_call_id."})
        return attrs


class StopField(serializers.Field):
    default_error_messages = {"invalid": "Must be a string or an array of up to 4 strings."}

    def to_internal_value(self, data: Any) -> tuple[str, ...]:
        if isinstance(data, str):
            return (data,)
        if isinstance(data, list) and len(data) <= 4 and all(isinstance(s, str) for s in data):
            return tuple(data)
        self.fail("invalid")

    def to_representation(self, value: Any) -> Any:
        return list(value)


class StreamOptionsSerializer(serializers.Serializer):
    include_usage = StrictBooleanField(required=False, default=False)


class ToolSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=("function",))
    function = JSONObjectField()

    def validate_function(self, value: dict) -> dict:
        if not isinstance(value.get("name"), str) or not value["name"]:
            raise serializers.ValidationError("name: must be a non-empty string.")
        if "parameters" in value and not isinstance(value["parameters"], dict):
            raise serializers.ValidationError("parameters: must be a JSON Schema object.")
        return value


class SamplingSerializer(serializers.Serializer):
    """What chat and legacy completions requests share: the model, sampling, stops, choices, streaming."""

    model = StrictCharField(max_length=512)
    temperature = StrictFloatField(required=False, allow_null=True, min_value=0.0, max_value=2.0)
    top_p = StrictFloatField(required=False, allow_null=True, min_value=0.0, max_value=1.0)
    max_tokens = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=INT64)
    stop = StopField(required=False, allow_null=True)
    seed = StrictIntegerField(required=False, allow_null=True, min_value=-INT64 - 1, max_value=INT64)
    n = StrictIntegerField(required=False, allow_null=True, min_value=1)
    stream = StrictBooleanField(required=False, allow_null=True, default=False)
    stream_options = StreamOptionsSerializer(required=False, allow_null=True)
    presence_penalty = StrictFloatField(required=False, allow_null=True, min_value=-2.0, max_value=2.0)
    frequency_penalty = StrictFloatField(required=False, allow_null=True, min_value=-2.0, max_value=2.0)
    logit_bias = serializers.DictField(
        child=StrictFloatField(min_value=-100.0, max_value=100.0), required=False, allow_null=True
    )
    user = StrictCharField(required=False, allow_blank=True)

    def validate_n(self, value: int | None) -> int | None:
        bound = settings.MLX_SERVER_MAX_CHOICES
        if value is not None and value > bound:
            raise serializers.ValidationError(f"At most {bound} choices (MLX_SERVER_MAX_CHOICES).")
        return value

    def validate_logit_bias(self, value: dict | None) -> dict[int, float] | None:
        if value is None:
            return None
        try:
            return {int(token): bias for token, bias in value.items()}
        except ValueError:
            raise serializers.ValidationError("Keys must be token ids (integers as strings).") from None


class ChatCompletionSerializer(SamplingSerializer):
    messages = MessageSerializer(many=True, allow_empty=False, max_length=MAX_MESSAGES)
    max_completion_tokens = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=INT64)
    tools = ToolSerializer(many=True, required=False, allow_null=True, max_length=MAX_TOOLS)
    tool_choice = serializers.JSONField(required=False, allow_null=True)
    parallel_tool_calls = StrictBooleanField(required=False, allow_null=True)
    response_format = JSONObjectField(required=False, allow_null=True)
    logprobs = StrictBooleanField(required=False, allow_null=True)
    top_logprobs = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=20)
    reasoning_effort = serializers.ChoiceField(choices=REASONING_EFFORTS, required=False, allow_null=True)
    # Extra chat template variables, as vLLM and llama.cpp's server take them (enable_thinking...).
    chat_template_kwargs = JSONObjectField(required=False, allow_null=True)
    # Ollama's: seconds the model stays loaded after this request (0: unload now; < 0: for ever).
    keep_alive = StrictFloatField(required=False, allow_null=True)

    def to_internal_value(self, data: Any) -> dict:
        return super().to_internal_value(with_legacy_functions(data))

    def validate_chat_template_kwargs(self, value: dict | None) -> dict | None:
        reserved = sorted(RESERVED_TEMPLATE_KWARGS & set(value or {}))
        if reserved:
            raise serializers.ValidationError(f"{', '.join(reserved)}: set by the server, not a template variable.")
        return value

    def validate_response_format(self, value: dict | None) -> dict | None:
        """text, json_object, or json_schema whose schema we can enforce (checked here, so a
        bad schema is a 400 before any model is touched)."""
        if value is None or value.get("type") in ("text", "json_object"):
            return value
        if value.get("type") != "json_schema":
            raise serializers.ValidationError(
                {"type": f"{value.get('type')!r} is not one of 'text', 'json_object', 'json_schema'."}
            )
        spec = value.get("json_schema")
        if not isinstance(spec, dict):
            raise serializers.ValidationError({"json_schema": "Must be an object with name and schema."})
        if not isinstance(spec.get("name"), str) or not SCHEMA_NAME.fullmatch(spec["name"]):
            raise serializers.ValidationError(
                {"json_schema": {"name": "Must be 1 to 64 letters, digits, underscores or dashes."}}
            )
        if spec.get("strict") is not None and not isinstance(spec["strict"], bool):
            raise serializers.ValidationError({"json_schema": {"strict": "Must be a boolean."}})
        if spec.get("schema") is not None:
            try:
                check_schema(spec["schema"], "response_format.json_schema.schema")
            except ConstraintError as exc:
                raise serializers.ValidationError({"json_schema": {"schema": str(exc)}}) from None
        return value

    def validate_tool_choice(self, value: Any) -> Any:
        if value is None or value in TOOL_CHOICES:
            return value
        function = value.get("function") if isinstance(value, dict) else None
        if isinstance(function, dict) and value.get("type") == "function" \
                and isinstance(function.get("name"), str) and function["name"]:
            return value
        raise serializers.ValidationError(
            'Must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}.'
        )

    def validate(self, attrs: dict) -> dict:
        if attrs.get("top_logprobs") is not None and not attrs.get("logprobs"):
            raise serializers.ValidationError({"top_logprobs": "Needs logprobs: true."})
        choice = attrs.get("tool_choice")
        check_choice(attrs, choice["function"]["name"] if isinstance(choice, dict) else None,
                     {t["function"]["name"] for t in attrs.get("tools") or []})
        return attrs


def with_legacy_functions(data: Any) -> Any:
    """The deprecated `functions` / `function_call` as the `tools` / `tool_choice` they became
    (validated as those); both forms at once is a 400."""
    if not isinstance(data, dict) or ("functions" not in data and "function_call" not in data):
        return data
    data = dict(data)
    functions, call = data.pop("functions", None), data.pop("function_call", None)
    if functions is not None:
        if data.get("tools") is not None:
            raise serializers.ValidationError({"functions": "Send tools or functions, not both."})
        data["tools"] = ([{"type": "function", "function": f} for f in functions]
                         if isinstance(functions, list) else functions)
    if call is not None:
        if data.get("tool_choice") is not None:
            raise serializers.ValidationError({"function_call": "Send tool_choice or function_call, not both."})
        named = isinstance(call, dict) and set(call) == {"name"}
        data["tool_choice"] = {"type": "function", "function": call} if named else call
    return data


def check_choice(attrs: dict, forced: str | None, tool_names: set[str]) -> None:
    """What chat and the Responses API both refuse: stream_options without a stream, a
    tool_choice with no tools to choose from or (`forced`) naming none of them."""
    if attrs.get("stream_options") and not attrs.get("stream"):
        raise serializers.ValidationError({"stream_options": "Only allowed when stream is true."})
    if (attrs.get("tool_choice") == "required" or forced) and not tool_names:
        raise serializers.ValidationError({"tool_choice": "Needs tools to choose from."})
    if forced and forced not in tool_names:
        raise serializers.ValidationError({"tool_choice": f"{forced!r} is not one of the tools."})


def _token_ids(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(t, int) and not isinstance(t, bool) and 0 <= t <= INT64 for t in value)


class TextsOrTokensField(serializers.Field):
    """OpenAI's `input` / `prompt`: a string, an array of strings, an array of token ids, or an
    array of such arrays; always handed on as a list of inputs (str or list[int]), none empty."""

    default_error_messages = {
        "invalid": "Must be a non-empty string, an array of non-empty strings, an array of token ids "
                   "(integers >= 0), or an array of arrays of token ids.",
        "too_many": "Holds {count} inputs; at most {limit} are allowed in one request.",
    }

    def __init__(self, *, max_items: Callable[[], int], empty_text: bool = False, **kwargs: Any):
        """max_items: read at validation time (a setting); empty_text: "" is an input (a
        fill-in-the-middle prompt at the start of a file)."""
        self.max_items = max_items
        self.empty_text = empty_text
        super().__init__(**kwargs)

    def _text(self, value: Any) -> bool:
        return isinstance(value, str) and (self.empty_text or bool(value))

    def to_internal_value(self, data: Any) -> list[str | list[int]]:
        if self._text(data):
            return [data]
        if _token_ids(data):
            return [data]
        if not isinstance(data, list) or not data or not (
                all(self._text(x) for x in data) or all(_token_ids(x) for x in data)):
            self.fail("invalid")
        if len(data) > self.max_items():
            self.fail("too_many", count=len(data), limit=self.max_items())
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class CreateEmbeddingSerializer(serializers.Serializer):
    model = StrictCharField(max_length=512)
    input = TextsOrTokensField(max_items=lambda: settings.MLX_SERVER_EMBED_MAX_INPUTS)
    encoding_format = serializers.ChoiceField(choices=("float", "base64"), required=False, default="float")
    dimensions = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=INT64)
    user = StrictCharField(required=False, allow_blank=True)
    # An extension (not OpenAI's): cut inputs longer than the model's context instead of a 400.
    truncate = StrictBooleanField(required=False, default=False)


class CreateCompletionSerializer(SamplingSerializer):
    """The legacy completions request: a raw prompt (no chat template), fill-in-the-middle with
    `suffix`, the integer `logprobs`, `echo`; `best_of` only where it is `n` (no ranking)."""

    prompt = TextsOrTokensField(max_items=lambda: settings.MLX_SERVER_MAX_CHOICES, empty_text=True)
    suffix = StrictCharField(required=False, allow_null=True, allow_blank=True, trim_whitespace=False)
    max_tokens = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=INT64, default=16)
    logprobs = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=5)
    echo = StrictBooleanField(required=False, allow_null=True, default=False)
    best_of = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=20)

    def validate(self, attrs: dict) -> dict:
        check_choice(attrs, None, set())
        n = attrs.get("n") or 1
        if attrs.get("best_of") is not None and attrs["best_of"] != n:
            raise serializers.ValidationError({"best_of": (
                f"best_of {attrs['best_of']} with n {n}: generating candidates to return the best is not "
                "supported; best_of may only equal n.")})
        if len(attrs["prompt"]) * n > settings.MLX_SERVER_MAX_CHOICES:
            raise serializers.ValidationError({"n": (
                f"{len(attrs['prompt'])} prompts times n {n} is more than {settings.MLX_SERVER_MAX_CHOICES} "
                "choices (MLX_SERVER_MAX_CHOICES).")})
        if attrs.get("echo") and attrs.get("logprobs") is not None:
            raise serializers.ValidationError({"echo": (
                "echo with logprobs is not supported: the prompt's own tokens are not scored.")})
        if attrs.get("echo") and not all(isinstance(p, str) for p in attrs["prompt"]):
            raise serializers.ValidationError({"echo": "echo needs a text prompt, not token ids."})
        return attrs

"""The response shapes of /v1, as serializers that both render the responses and document them
in /v1/openapi.json (schema.py), so the contract cannot drift from what clients get.

Streamed chat.completion.chunk frames are written by chat.py directly: they are described in
the operation's text, and going through a serializer per token would cost decode speed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rest_framework import serializers


class NumberField(serializers.FloatField):
    """A JSON number as given: an integer stays an integer (a ttl of 2 is 2, not 2.0)."""

    def to_representation(self, value: float) -> float:
        return value


@dataclass(frozen=True)
class ModelEntry:
    """One registered model as /v1/models lists it (views.py gathers the facts)."""

    id: str
    created: int
    aliases: tuple[str, ...]
    backend: str
    tool_format: str
    capabilities: tuple[str, ...]
    context_length: int
    available: bool
    unavailable_reason: str | None
    loaded: bool
    memory_bytes: int | None
    pinned: bool
    ttl: float | None
    fixture: bool
    description: str
    object: str = "model"
    owned_by: str = "mlx-server"


class ModelSerializer(serializers.Serializer):
    """One /v1/models entry: OpenAI's four keys, then what this server knows of the model."""

    id = serializers.CharField()
    object = serializers.CharField()
    created = serializers.IntegerField(help_text="Modification time of the model's folder; 0 before it exists.")
    owned_by = serializers.CharField()
    aliases = serializers.ListField(child=serializers.CharField(), help_text="Other names a request may use.")
    backend = serializers.CharField(help_text="text (mlx-lm), vision (mlx-vlm) or embedding (mlx-embeddings).")
    tool_format = serializers.CharField(help_text="How the model writes tool calls; none: it does not.")
    capabilities = serializers.ListField(child=serializers.CharField(),
                                         help_text="chat, plus vision and tools as backend and tool_format give.")
    context_length = serializers.IntegerField(help_text="Prompt plus completion tokens.")
    available = serializers.BooleanField(help_text="Loadable now (maybe after a local import or build).")
    unavailable_reason = serializers.CharField(allow_null=True, help_text="Why not, when not available.")
    loaded = serializers.BooleanField(help_text="In memory now (resident).")
    memory_bytes = serializers.IntegerField(
        allow_null=True, help_text="What it counts for against the memory budget while resident (weights + KV); null: not loaded.")
    pinned = serializers.BooleanField(help_text="models.yaml `pin`: never evicted to make room under the memory budget.")
    ttl = NumberField(allow_null=True, help_text="Idle seconds before it is unloaded; null: never.")
    fixture = serializers.BooleanField(help_text="A tiny random-weight test model, not for chat.")
    description = serializers.CharField(allow_blank=True)


class ModelListSerializer(serializers.Serializer):
    object = serializers.CharField()
    data = ModelSerializer(many=True)


def model_list(entries: list[ModelEntry]) -> dict[str, Any]:
    return ModelListSerializer({"object": "list", "data": entries}).data


class FunctionCallSerializer(serializers.Serializer):
    name = serializers.CharField()
    arguments = serializers.CharField(help_text="A JSON object, as a string.")


class ToolCallSerializer(serializers.Serializer):
    id = serializers.CharField()
    type = serializers.CharField()
    function = FunctionCallSerializer()


class AssistantMessageSerializer(serializers.Serializer):
    role = serializers.CharField()
    content = serializers.CharField(allow_null=True, allow_blank=True, trim_whitespace=False)
    refusal = serializers.CharField(allow_null=True)
    tool_calls = ToolCallSerializer(many=True, required=False, help_text="Only when the model called tools.")
    reasoning_content = serializers.CharField(
        required=False, trim_whitespace=False,
        help_text="A thinking model's reasoning (models.yaml `reasoning`), never part of content.")
    reasoning = serializers.CharField(required=False, trim_whitespace=False,
                                      help_text="The same text, under the name newer clients read.")


class ChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    message = AssistantMessageSerializer()
    logprobs = serializers.JSONField(
        allow_null=True, help_text="With logprobs: true, {content: [{token, logprob, bytes, top_logprobs}], refusal}.")
    finish_reason = serializers.CharField(help_text="stop, length, tool_calls or cancelled.")


class PromptTokensDetailsSerializer(serializers.Serializer):
    cached_tokens = serializers.IntegerField(help_text="Prompt tokens reused from the prefix cache.")


class CompletionTokensDetailsSerializer(serializers.Serializer):
    reasoning_tokens = serializers.IntegerField()


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    prompt_tokens_details = PromptTokensDetailsSerializer()
    completion_tokens_details = CompletionTokensDetailsSerializer()


class ChatCompletionResponseSerializer(serializers.Serializer):
    """The whole answer of POST /v1/chat/completions (stream: false)."""

    id = serializers.CharField()
    object = serializers.CharField()
    created = serializers.IntegerField()
    model = serializers.CharField()
    choices = ChoiceSerializer(many=True)
    usage = UsageSerializer()
    system_fingerprint = serializers.CharField(help_text="The model and the MLX it runs on, hashed.")


class CompletionChoiceSerializer(serializers.Serializer):
    text = serializers.CharField(allow_blank=True, trim_whitespace=False, help_text="With echo, the prompt first.")
    index = serializers.IntegerField(help_text="prompt index * n + choice.")
    logprobs = serializers.JSONField(
        allow_null=True, help_text="With logprobs: N, {tokens, token_logprobs, top_logprobs (N per token), text_offset}.")
    finish_reason = serializers.CharField(help_text="stop or length.")


class CompletionResponseSerializer(serializers.Serializer):
    """The whole answer of POST /v1/completions (stream: false); documents the shape
    (api/completions.py builds it)."""

    id = serializers.CharField()
    object = serializers.CharField(help_text="Always text_completion.")
    created = serializers.IntegerField()
    model = serializers.CharField()
    system_fingerprint = serializers.CharField(help_text="The model and the MLX it runs on, hashed.")
    choices = CompletionChoiceSerializer(many=True)
    usage = UsageSerializer()


class EmbeddingVectorField(serializers.Field):
    """A list of floats, or with encoding_format: base64 a string (little-endian float32 bytes)."""

    def to_representation(self, value: Any) -> Any:
        return value


class EmbeddingSerializer(serializers.Serializer):
    object = serializers.CharField(help_text="Always embedding.")
    index = serializers.IntegerField(help_text="The input's position in the request.")
    embedding = EmbeddingVectorField()


class EmbeddingUsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField(help_text="Tokens of every input, special tokens included.")
    total_tokens = serializers.IntegerField()


class EmbeddingResponseSerializer(serializers.Serializer):
    """The answer of POST /v1/embeddings; documents the shape (api/embeddings.py builds it)."""

    object = serializers.CharField(help_text="Always list.")
    data = EmbeddingSerializer(many=True)
    model = serializers.CharField()
    usage = EmbeddingUsageSerializer()

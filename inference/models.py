"""Request logs: one row per API request, failed and cancelled ones too."""
from django.db import models


class RequestLog(models.Model):
    class Outcome(models.TextChoices):
        OK = "ok", "ok"
        ERROR = "error", "error"
        CANCELLED = "cancelled", "cancelled"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    request_id = models.CharField(max_length=64, db_index=True)
    method = models.CharField(max_length=8)
    endpoint = models.CharField(max_length=256, db_index=True)
    model = models.CharField(max_length=512, blank=True, help_text="The model the client asked for.")
    resolved_model = models.CharField(max_length=512, blank=True, db_index=True,
                                      help_text="The registry id it resolved to.")
    status_code = models.PositiveSmallIntegerField(db_index=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.OK, db_index=True)
    stream = models.BooleanField(default=False)
    latency_ms = models.FloatField(null=True, blank=True)
    ttft_ms = models.FloatField(null=True, blank=True, help_text="Time to first generated text.")
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    cached_tokens = models.PositiveIntegerField(null=True, blank=True,
                                                help_text="Prompt tokens reused from the prefix cache.")
    decode_tps = models.FloatField(null=True, blank=True, help_text="Generated tokens per second.")
    finish_reason = models.CharField(max_length=32, blank=True)
    image_count = models.PositiveSmallIntegerField(default=0, help_text="Images in the request.")
    input_count = models.PositiveIntegerField(null=True, blank=True,
                                              help_text="Inputs of an embeddings request (never its vectors).")
    images = models.JSONField(default=list, blank=True,
                              help_text="Per image: part, source, format, bytes, size, sha256 (never the bytes).")
    image_ms = models.FloatField(null=True, blank=True, help_text="Time spent fetching and decoding images.")
    swapped_from = models.CharField(max_length=512, blank=True,
                                    help_text="The model unloaded to serve this request.")
    request_body = models.TextField(blank=True)
    response_body = models.TextField(blank=True)
    error_code = models.CharField(max_length=64, blank=True, db_index=True)
    error = models.TextField(blank=True)
    client = models.CharField(max_length=128, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.method} {self.endpoint} {self.status_code} ({self.request_id})"


class ToolCallLog(models.Model):
    """One tool call the model made (or tried to: a block that did not parse)."""

    request = models.ForeignKey(RequestLog, on_delete=models.CASCADE, related_name="tool_calls")
    index = models.PositiveSmallIntegerField()
    call_id = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=256, blank=True, db_index=True)
    arguments = models.TextField(blank=True, help_text="JSON arguments, or the raw text that failed to parse.")
    parsed_ok = models.BooleanField(default=True, db_index=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["request_id", "index"]

    def __str__(self) -> str:
        return f"{self.name or '(unparsed)'} #{self.index}"


class StoredResponse(models.Model):
    """A Responses API response kept for `previous_response_id` and GET/DELETE /v1/responses/{id}.

    `history` is every item before this request's input (the earlier turns' inputs and
    outputs), so a continuation is history + input_items + the response's output, one row
    read whatever the conversation's length; a deleted turn leaves later ones whole.
    """

    id = models.CharField(max_length=64, primary_key=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    model = models.CharField(max_length=512, db_index=True)
    status = models.CharField(max_length=16, db_index=True)
    previous_response_id = models.CharField(max_length=64, blank=True, db_index=True)
    history = models.JSONField(default=list, blank=True, help_text="Items of the earlier turns.")
    input_items = models.JSONField(default=list, blank=True, help_text="This request's input items, with ids.")
    response = models.JSONField(help_text="The response object as the client got it.")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.id} ({self.model}, {self.status})"

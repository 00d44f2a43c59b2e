from django.contrib import admin

from .models import RequestLog, StoredResponse, ToolCallLog


class ReadOnlyMixin:
    """Logs are evidence: nobody edits them through the admin."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ToolCallInline(ReadOnlyMixin, admin.TabularInline):
    model = ToolCallLog
    extra = 0
    can_delete = False


@admin.register(RequestLog)
class RequestLogAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "created_at", "endpoint", "resolved_model", "status_code", "outcome", "stream",
        "latency_ms", "ttft_ms", "prompt_tokens", "cached_tokens", "completion_tokens", "decode_tps", "image_count",
        "input_count",
    )
    list_filter = ("outcome", "status_code", "resolved_model", "endpoint", "stream", "error_code",
                   "tool_calls__name")
    search_fields = ("request_id", "model", "resolved_model", "request_body", "response_body", "error")
    date_hierarchy = "created_at"
    inlines = [ToolCallInline]


@admin.register(ToolCallLog)
class ToolCallLogAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("request", "index", "name", "parsed_ok", "call_id")
    list_filter = ("parsed_ok", "name")
    search_fields = ("name", "arguments", "call_id", "request__request_id")


@admin.register(StoredResponse)
class StoredResponseAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Stored Responses API responses, beside the request logs (the row's request has the same id)."""

    list_display = ("created_at", "id", "model", "status", "previous_response_id")
    list_filter = ("status", "model")
    search_fields = ("id", "previous_response_id", "model")
    date_hierarchy = "created_at"

from django.contrib import admin

from .models import RequestLog


@admin.register(RequestLog)
class RequestLogAdmin(admin.ModelAdmin):
    list_display = (
        "created_at", "endpoint", "resolved_model", "status_code", "outcome", "stream",
        "latency_ms", "ttft_ms", "prompt_tokens", "cached_tokens", "completion_tokens", "decode_tps",
    )
    list_filter = ("outcome", "status_code", "resolved_model", "endpoint", "stream", "error_code")
    search_fields = ("request_id", "model", "resolved_model", "request_body", "response_body", "error")
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

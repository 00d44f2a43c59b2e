from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from .conversation import conversation, loads, pretty
from .dashboard import DEFAULT_WINDOW, WINDOWS, dashboard
from .models import RequestLog, StoredResponse, ToolCallLog

admin.site.site_header = "mlx-server admin"
admin.site.site_title = "mlx-server"
admin.site.site_url = "/"

REPLAYABLE_ENDPOINT = "/v1/chat/completions"  # the playground speaks chat completions


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


def rounded(value: float | None, unit: str, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f} {unit}"


@admin.register(RequestLog)
class RequestLogAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "created_at", "endpoint", "resolved_model", "status_code", "outcome", "stream",
        "latency", "ttft", "tokens", "decode_rate", "image_count", "input_count",
    )
    list_filter = ("outcome", "status_code", "resolved_model", "endpoint", "stream", "error_code",
                   "tool_calls__name")
    search_fields = ("request_id", "model", "resolved_model", "request_body", "response_body", "error")
    date_hierarchy = "created_at"
    inlines = [ToolCallInline]
    fieldsets = (
        (None, {"fields": ("created_at", "request_id", ("method", "endpoint"), ("model", "resolved_model"),
                           ("status_code", "outcome", "finish_reason"), "stream", "client")}),
        ("Timings and tokens", {"fields": (("latency", "ttft", "image_time"), ("tokens", "decode_rate"),
                                           "swapped_from")}),
        ("Conversation", {"fields": ("conversation",)}),
        ("Error", {"fields": ("error_code", "error"), "classes": ("collapse",)}),
        ("Bodies", {"fields": ("request_json", "response_json", "images"), "classes": ("collapse",)}),
    )

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "latency", "ttft", "image_time", "tokens",
                "decode_rate", "conversation", "request_json", "response_json"]

    @admin.display(description="latency", ordering="latency_ms")
    def latency(self, obj: RequestLog) -> str:
        return rounded(obj.latency_ms, "ms")

    @admin.display(description="TTFT", ordering="ttft_ms")
    def ttft(self, obj: RequestLog) -> str:
        return rounded(obj.ttft_ms, "ms")

    @admin.display(description="image decode", ordering="image_ms")
    def image_time(self, obj: RequestLog) -> str:
        return rounded(obj.image_ms, "ms", 1)

    @admin.display(description="tokens (prompt, cached → completion)")
    def tokens(self, obj: RequestLog) -> str:
        if obj.prompt_tokens is None and obj.completion_tokens is None:
            return "—"
        cached = f", {obj.cached_tokens} cached" if obj.cached_tokens else ""
        return f"{obj.prompt_tokens or 0}{cached} → {obj.completion_tokens or 0}"

    @admin.display(description="decode", ordering="decode_tps")
    def decode_rate(self, obj: RequestLog) -> str:
        return rounded(obj.decode_tps, "tok/s", 1)

    @admin.display(description="conversation")
    def conversation(self, obj: RequestLog) -> str:
        return mark_safe(render_to_string("admin/inference/requestlog/conversation.html", {
            "turns": conversation(obj.request_body, obj.response_body, obj.images),
        }))

    @admin.display(description="request body")
    def request_json(self, obj: RequestLog) -> str:
        return format_html('<pre class="json">{}</pre>', pretty(obj.request_body))

    @admin.display(description="response body")
    def response_json(self, obj: RequestLog) -> str:
        return format_html('<pre class="json">{}</pre>', pretty(obj.response_body))

    def get_urls(self):
        own = [
            path("dashboard/", self.admin_site.admin_view(self.dashboard_view), name="inference_requestlog_dashboard"),
            path("<int:pk>/replay/", self.admin_site.admin_view(self.replay_view), name="inference_requestlog_replay"),
        ]
        return own + super().get_urls()

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        window = request.GET.get("window", DEFAULT_WINDOW)
        if window not in WINDOWS:
            window = DEFAULT_WINDOW
        return TemplateResponse(request, "admin/inference/requestlog/dashboard.html", {
            **self.admin_site.each_context(request),
            "title": "Dashboard",
            "opts": self.model._meta,
            "windows": list(WINDOWS),
            "window": window,
            "data": dashboard(window),
        })

    def replay_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        """The logged chat request as the playground re-sends it. Image bytes were never kept:
        their parts are left out, and the answer says how many."""
        row = RequestLog.objects.filter(pk=pk, endpoint=REPLAYABLE_ENDPOINT).first()
        body = loads(row.request_body) if row else None
        if not isinstance(body, dict):
            raise Http404("no replayable chat request with this id")
        left_out = 0
        for message in body.get("messages") or []:
            if isinstance(message, dict) and isinstance(message.get("content"), list):
                kept = [p for p in message["content"] if not (isinstance(p, dict) and p.get("type") == "image_url")]
                left_out += len(message["content"]) - len(kept)
                message["content"] = kept
        body["replay_images_left_out"] = left_out
        return JsonResponse(body)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        row = self.get_object(request, object_id)
        replay = ""
        if row is not None and row.endpoint == REPLAYABLE_ENDPOINT and loads(row.request_body) is not None:
            replay = f"{reverse('web:playground')}?replay={row.pk}"
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "replay_url": replay})


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

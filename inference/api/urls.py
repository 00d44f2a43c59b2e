from django.urls import path
from drf_spectacular.views import SpectacularJSONAPIView

from ..metrics import metrics_view
from . import control, views
from .anthropic import views as anthropic
from .responses_api import views as responses

urlpatterns = [
    path("health", views.HealthView.as_view(), name="health"),
    path("v1/models", views.ModelListView.as_view(), name="models"),
    path("v1/models/<path:model>/load", control.load_model, name="model-load"),
    path("v1/models/<path:model>/unload", control.unload_model, name="model-unload"),
    path("v1/models/<path:model>", views.ModelDetailView.as_view(), name="model-detail"),
    path("v1/chat/completions", views.chat_completions, name="chat-completions"),
    path("v1/messages", anthropic.messages, name="messages"),
    path("v1/messages/count_tokens", anthropic.count_tokens, name="messages-count-tokens"),
    path("v1/responses", responses.create_response, name="responses"),
    path("v1/responses/<str:response_id>", responses.response_detail, name="response-detail"),
    path("v1/responses/<str:response_id>/input_items", responses.response_input_items, name="response-input-items"),
    path("v1/completions", views.completions, name="completions"),
    path("v1/embeddings", views.embeddings, name="embeddings"),
    path("v1/openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    path("metrics", metrics_view, name="metrics"),
]

from django.urls import path

from . import views

urlpatterns = [
    path("health", views.HealthView.as_view(), name="health"),
    path("v1/models", views.ModelListView.as_view(), name="models"),
    path("v1/models/<path:model>", views.ModelDetailView.as_view(), name="model-detail"),
    path("v1/chat/completions", views.chat_completions, name="chat-completions"),
]

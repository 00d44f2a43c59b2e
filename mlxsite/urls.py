from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("web.urls")),
    path("", include("inference.api.urls")),
]

handler404 = "inference.api.handlers.not_found"
handler500 = "inference.api.handlers.server_error"

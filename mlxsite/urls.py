from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("inference.api.urls")),
]

handler404 = "inference.api.errors.not_found"
handler500 = "inference.api.errors.server_error"

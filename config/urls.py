from django.contrib import admin
from django.urls import include, path

from config.views import healthz

admin.site.site_header = "Herald"
admin.site.site_title = "Herald"
admin.site.index_title = "Campaigns, contacts and providers"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("messaging.urls")),
    path("", include("dashboard.urls")),
]

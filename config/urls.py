from django.contrib import admin
from django.urls import include, path

from audit.views import PasswordResetView
from config.views import healthz

# The admin's modules load here, not when a process starts (config/apps.py).
admin.autodiscover()

admin.site.site_header = "Herald"
admin.site.site_title = "Herald"
admin.site.index_title = "Campaigns, contacts and providers"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    # Before Django's own: rate limited, one answer for every address, mailed by the worker.
    path("accounts/password_reset/", PasswordResetView.as_view(), name="password_reset"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("api.urls")),
    path("", include("messaging.urls")),
    path("", include("dashboard.urls")),
]

handler403 = "config.views.permission_denied"
handler404 = "config.views.page_not_found"
handler500 = "config.views.server_error"

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from config.views import healthz

admin.site.site_header = "Herald"
admin.site.site_title = "Herald"
admin.site.index_title = "Campaigns, contacts and providers"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("", include("messaging.urls")),
    # The marketers' dashboard will live here; until then the admin is the workspace.
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
]

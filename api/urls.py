from django.urls import path, re_path

from api.main import api
from api.views import unknown_path

urlpatterns = [
    path("api/v1/", api.urls),
    # Anything else under the API answers in the API's error shape, not the HTML 404 page.
    re_path(r"^api/", unknown_path),
]

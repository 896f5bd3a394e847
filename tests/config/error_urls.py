"""Herald's URLs and error handlers, plus one view that fails: a 500 to look at."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from config.urls import handler403, handler404, handler500, urlpatterns


def fail(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug in a view")


urlpatterns = [*urlpatterns, path("fail/", fail)]
__all__ = ["handler403", "handler404", "handler500", "urlpatterns"]

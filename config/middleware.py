"""Nothing Herald answers is kept by a browser's or a proxy's cache (`Cache-Control: no-store`)."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control


class NoStoreMiddleware:
    """Marks every page and file Herald makes `no-store`.

    The dashboard, the admin and their exports (campaign recipients, reports, contacts,
    opt-outs, rejected import rows) all show people: a shared computer's back button or a
    caching proxy must not hand them to the next person. Static files never get here
    (WhiteNoise, before this in MIDDLEWARE, answers them), and /healthz keeps its own header.
    """

    exempt_paths = frozenset({"/healthz"})

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path not in self.exempt_paths:
            patch_cache_control(response, no_store=True)
        return response

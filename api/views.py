"""Plain Django views at the API's edge."""

from django.http import HttpRequest, JsonResponse

from api.errors import error_response


def unknown_path(request: HttpRequest) -> JsonResponse:
    return error_response(404, "not_found", f"No API route at {request.path}.")

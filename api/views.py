"""Plain Django views at the API's edge."""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from api.errors import error_response


# No session is read here, so nothing to forge: a POST to a wrong path is a 404 like a GET.
@csrf_exempt
def unknown_path(request: HttpRequest) -> JsonResponse:
    return error_response(404, "not_found", f"No API route at {request.path}.")

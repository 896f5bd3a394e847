"""The API's one error shape, `{"error": {"code", "message", "details"}}`, for every refusal.

Every bad input is a 4xx in this shape: a view raises ApiError, and the handlers below turn
ninja's, pydantic's and Django's own refusals into it too. Only a bug is a 500.
"""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, Throttled
from ninja.errors import ValidationError as NinjaValidationError

#: Each HTTP status ninja may answer with by itself, and the code we give it.
CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid",
    429: "rate_limited",
}


class ApiError(Exception):
    """A refusal the client can act on: its HTTP status, a stable code, words and details."""

    def __init__(
        self, status: int, code: str, message: str, details: Any = None, headers: Any = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details if details is not None else {}
        self.headers = dict(headers or {})


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: Any = None
) -> JsonResponse:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    response = JsonResponse(body, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def not_found(message: str = "No such resource.") -> ApiError:
    return ApiError(404, "not_found", message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def invalid(message: str, details: Any = None) -> ApiError:
    return ApiError(422, "invalid", message, details)


def validation_details(error: DjangoValidationError) -> dict[str, list[str]]:
    """A model's refusal as {field: [messages]} ("__all__" for the whole object)."""
    if hasattr(error, "error_dict"):
        return {
            field: [str(m) for e in errors for m in e.messages]
            for field, errors in error.error_dict.items()
        }
    return {"__all__": [str(m) for m in error.messages]}


def install(api: NinjaAPI) -> None:
    """Answer every refusal `api` can meet in the one shape."""

    def on_api_error(request: HttpRequest, exc: Any) -> HttpResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    def on_throttled(request: HttpRequest, exc: Any) -> HttpResponse:
        wait = max(1, math.ceil(exc.wait or 1))
        return error_response(
            429,
            "rate_limited",
            f"Too many requests for this token: try again in {wait} s.",
            {"retry_after": wait},
            {"Retry-After": str(wait)},
        )

    def on_unauthenticated(request: HttpRequest, exc: Any) -> HttpResponse:
        return error_response(
            401,
            "unauthorized",
            "Send a valid, unexpired API token: Authorization: Bearer <token>.",
            headers={"WWW-Authenticate": "Bearer"},
        )

    def on_http_error(request: HttpRequest, exc: Any) -> HttpResponse:
        code = CODES.get(exc.status_code, "bad_request")
        return error_response(exc.status_code, code, str(exc))

    def on_invalid(request: HttpRequest, exc: Any) -> HttpResponse:
        return error_response(
            422, "invalid", "The request does not match the schema.", {"errors": _plain(exc)}
        )

    def on_model_refusal(request: HttpRequest, exc: Any) -> HttpResponse:
        return error_response(422, "invalid", "Refused.", validation_details(exc))

    def on_missing(request: HttpRequest, exc: Any) -> HttpResponse:
        return error_response(404, "not_found", "No such resource.")

    def on_too_big(request: HttpRequest, exc: Any) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return error_response(
            413, "too_large", f"The request body is over {limit:,} bytes.", {"limit": limit}
        )

    def on_denied(request: HttpRequest, exc: Any) -> HttpResponse:
        return error_response(403, "forbidden", str(exc) or "Not allowed.")

    api.add_exception_handler(ApiError, on_api_error)
    api.add_exception_handler(Throttled, on_throttled)
    api.add_exception_handler(AuthenticationError, on_unauthenticated)
    api.add_exception_handler(HttpError, on_http_error)
    api.add_exception_handler(NinjaValidationError, on_invalid)
    api.add_exception_handler(DjangoValidationError, on_model_refusal)
    api.add_exception_handler(Http404, on_missing)
    api.add_exception_handler(PermissionDenied, on_denied)
    api.add_exception_handler(RequestDataTooBig, on_too_big)


def _plain(exc: NinjaValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors without the input echoed back (it may hold a phone number)."""
    return [
        {
            "loc": [str(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        for error in exc.errors
    ]

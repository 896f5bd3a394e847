"""Dashboard pages: API tokens — the user's own (a superuser's: everyone's), making one, and
revoking one.

A new token's text is shown once: the POST that makes it keeps it in the session only until
the page it redirects to has shown it (so a reload neither shows it again nor makes another),
never in a URL. What each scope needs, and who sees whose tokens, is api.tokens'.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from api import tokens
from dashboard.access import can_use_api_tokens
from dashboard.token_forms import TokenForm

View = Callable[..., HttpResponse]

#: The session's key for a token just made, until the next page of tokens shows it.
JUST_MADE = "api_token_just_made"
TOKENS_PER_PAGE = 50
DOOR = "dashboard"


def token_access(view: View) -> View:
    """Some API scope is of use to the user (else 403): only then may they hold tokens."""

    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not can_use_api_tokens(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return checked


@login_required
@token_access
def token_list(request: HttpRequest) -> HttpResponse:
    """The tokens, and the form making one; a made one is shown on the page after."""
    form = TokenForm(request.POST if request.method == "POST" else None, user=request.user)
    if request.method == "POST" and form.is_valid() and _make(request, form):
        return redirect("dashboard:tokens")
    visible = tokens.visible_to(request.user).order_by("-created_at", "-pk")
    page = Paginator(visible, TOKENS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "dashboard/tokens.html",
        {
            "title": "API tokens",
            "nav": "tokens",
            "page": page,
            "form": form,
            "just_made": request.session.pop(JUST_MADE, None),
            "shows_owner": request.user.is_superuser,
            "docs_url": reverse("api-v1:openapi-view"),
        },
    )


def _make(request: HttpRequest, form: TokenForm) -> bool:
    """Issue the token the form asks for; False with the form's errors if it cannot be."""
    data = form.cleaned_data
    try:
        token, text = tokens.issue(
            request.user,
            data["name"],
            data["scopes"],
            data["expires_in_days"],
            by=request.user,
            door=DOOR,
        )
    except ValidationError as exc:
        form.add_error(None, exc)
        return False
    request.session[JUST_MADE] = {"id": token.pk, "name": token.name, "text": text}
    return True


@login_required
@require_POST
@token_access
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(tokens.visible_to(request.user), pk=pk)
    if tokens.revoke(token, by=request.user, door=DOOR):
        messages.success(request, f"Revoked “{token.name}” ({token.shown}): it stops working now.")
    else:
        messages.info(request, f"“{token.name}” was revoked already.")
    return redirect("dashboard:tokens")


urlpatterns = [
    path("api-tokens/", token_list, name="tokens"),
    path("api-tokens/<int:pk>/revoke/", token_revoke, name="token_revoke"),
]

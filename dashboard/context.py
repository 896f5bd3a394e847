from typing import Any

from django.http import HttpRequest

from dashboard.access import roles


def dashboard(request: HttpRequest) -> dict[str, Any]:
    """`may`: what the signed-in user's groups allow, for the menu."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"may": {}}
    return {"may": roles(user)}

from typing import Any

from django.http import HttpRequest

from dashboard.access import roles
from dashboard.inbox import unread_count


def dashboard(request: HttpRequest) -> dict[str, Any]:
    """`may`: what the signed-in user's groups allow, for the menu; `inbox_unread`: the
    menu's badge, for whoever may see the inbox. A callable, so only a page that shows the
    menu counts (one COUNT, shared for a few seconds)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"may": {}}
    may = roles(user)
    return {"may": may, "inbox_unread": unread_count if may["inbox"] else 0}

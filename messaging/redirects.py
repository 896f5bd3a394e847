"""`/r/<code>`: a short link's redirect, counting the click (messaging.links).

Open to anyone, with no login, no cookie and nothing in the answer that says whose link
it is; an unknown, malformed or purged code gets the same plain 404.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound, HttpResponseRedirect
from django.views.decorators.http import require_http_methods

from messaging.links import agent_class, counted, destination, follow

logger = logging.getLogger(__name__)

NOT_FOUND = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    "<title>Link not found</title></head><body><h1>Link not found</h1>"
    "<p>This link does not exist, or it has expired. Check that it was copied whole.</p>"
    "</body></html>"
)


@require_http_methods(["GET", "HEAD"])
def follow_link(request: HttpRequest, code: str) -> HttpResponse:
    agent = request.headers.get("user-agent", "")
    if counted(request.method or "", agent):
        try:
            url = follow(code, agent_class(agent))
        except DatabaseError as exc:  # the visitor still gets where they were going
            logger.warning("a click could not be recorded (%s)", type(exc).__name__)
            url = destination(code)
    else:
        url = destination(code)
    if url is None:
        return HttpResponseNotFound(NOT_FOUND)
    response = HttpResponseRedirect(url)
    response["Referrer-Policy"] = "no-referrer"
    return response

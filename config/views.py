"""Operational endpoints that sit outside any one app, and the error pages."""

import logging
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseForbidden,
    HttpResponseNotFound,
    HttpResponseServerError,
    JsonResponse,
)
from django.template import loader
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_q.brokers import Broker, get_broker
from django_q.conf import Conf

from messaging.models import WorkerHeartbeat

logger = logging.getLogger(__name__)

#: The last resort when even the styled 500 page fails to render (a missing static file in
#: the manifest, a template error): plain words, nothing that can fail in its turn.
PLAIN_500 = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    "<title>Server error · Herald</title></head><body><main><h1>Server error</h1>"
    "<p>Herald failed to answer this request. The error has been logged.</p>"
    '<p><a href="/">Go to the home page</a>.</p></main></body></html>'
)


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Database reachability, the freshest worker heartbeat and the task broker, as JSON.

    200 while the database answers, so a load balancer keeps a web node whose
    workers or broker are down (the JSON says so, status "degraded"); 503 when the
    database does not.
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return JsonResponse({"status": "error", "database": "unreachable"}, status=503)
    worker = WorkerHeartbeat.objects.summary()
    broker = broker_health()
    healthy = worker["status"] == "ok" and broker["status"] == "ok"
    return JsonResponse(
        {
            "status": "ok" if healthy else "degraded",
            "database": "ok",
            "worker": worker,
            "broker": broker,
        }
    )


_broker: Broker | None = None


def broker_health() -> dict[str, Any]:
    """The task queue's kind ("orm" or "redis"), whether it answers, and how many tasks
    wait in it. A broker that does not answer degrades the status: pages still work, but
    nothing new reaches the workers."""
    global _broker
    kind = "orm" if Conf.ORM else "redis"
    try:
        if _broker is None:
            _broker = get_broker()  # one per process: the Redis one keeps its connections
        if not _broker.ping():
            raise ConnectionError("no answer")
        queued = _broker.queue_size()
    except Exception as exc:  # whatever the broker's client raises, it is unreachable
        logger.warning("healthz: the %s broker did not answer (%s)", kind, type(exc).__name__)
        return {"kind": kind, "status": "unreachable"}
    return {"kind": kind, "status": "ok", "queued": queued}


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404 inside the layout, with the menu the user may use."""
    return HttpResponseNotFound(
        loader.render_to_string("404.html", {"title": "Page not found"}, request)
    )


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    """403 inside the layout, saying why when the refusal has words (the model's own)."""
    context = {
        "title": "Not allowed",
        "reason": str(exception),
        "access_contact": settings.HERALD_ACCESS_CONTACT,
    }
    return HttpResponseForbidden(loader.render_to_string("403.html", context, request))


def server_error(request: HttpRequest) -> HttpResponse:
    """500 inside the layout, rendered without the request or the database: whatever failed
    may be either. If the page itself fails, plain words rather than a second traceback."""
    page: str
    try:
        page = loader.render_to_string("500.html", {"title": "Something went wrong"})
    except Exception:  # the answer is already an error: a broken page must not hide it
        logger.exception("The 500 page failed to render; answered in plain words")
        page = PLAIN_500
    return HttpResponseServerError(page)

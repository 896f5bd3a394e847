"""Operational endpoints that sit outside any one app."""

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from messaging.models import WorkerHeartbeat


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Database reachability and the freshest worker heartbeat, as JSON.

    200 while the database answers, so a load balancer keeps a web node whose
    workers are down (the JSON says so); 503 when the database does not.
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return JsonResponse({"status": "error", "database": "unreachable"}, status=503)
    worker = WorkerHeartbeat.objects.summary()
    status = "ok" if worker["status"] == "ok" else "degraded"
    return JsonResponse({"status": status, "database": "ok", "worker": worker})

"""django-q2 tasks of the API app: wake-ups that call one function. The rows are the truth."""

from datetime import timedelta

from django.utils import timezone

from api.models import IdempotentRequest, WebhookDelivery
from api.outgoing import delivery

#: Settled deliveries (and their attempts) are kept this long in the log.
LOG_DAYS = 30


def deliver_webhooks() -> int:
    """Queued as outbox rows commit, and to carry on a long run: post what is due."""
    return delivery.run(linger=0 if delivery.sync_mode() else delivery.LINGER_SECONDS)


def webhooks_tick() -> int:
    """Every minute: forget deliveries older than LOG_DAYS and Idempotency-Keys older than
    a day, then post what is due (the later retries, and rows whose nudge was lost)."""
    WebhookDelivery.objects.prune(timezone.now() - timedelta(days=LOG_DAYS))
    IdempotentRequest.objects.purge_expired()
    return deliver_webhooks()

"""django-q2 tasks of the messaging layer: wake-ups that call one function."""

from messaging import transactional
from messaging.dispatch import poll_statuses as poll
from messaging.inbound import poll_accounts, send_due_replies
from messaging.webhooks import queue


def poll_statuses() -> int:
    """Every minute: look up messages still waiting for a delivery report."""
    return poll()


def send_replies() -> int:
    """Queued when a reply is written (inbox, HELP); retries come with the inbound tick."""
    return send_due_replies()


def send_transactional() -> int:
    """Queued when a transactional message is written (POST /api/v1/messages)."""
    return transactional.run_sender()


def inbound_tick() -> dict[str, int]:
    """Every minute: read the polled gateways' replies, send replies and transactional
    messages that are due again, apply webhook events left waiting."""
    stored = poll_accounts()
    send_due_replies()
    # Retries, and any whose nudge was lost.
    transactional.send_due()
    # Webhook events whose nudge was lost (the applier is nudged as each is recorded).
    queue.apply_pending()
    return stored


def apply_webhooks() -> int:
    """Queued by the webhook door: apply the events it recorded (messaging.webhooks.queue)."""
    return queue.apply_webhooks()
